//! The deployment page: upload or edit the deploy file (and the files it names), see the plan as
//! the CLI renders it ([`smimekit_service::deploy::Plan::render`]), approve it, and watch the
//! apply live (server-sent events of HTML fragments, swapped in by htmx's SSE extension; the page
//! refreshes itself without JavaScript), or cancel it. The data functions are the JSON API's.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect};
use base64::Engine as _;
use maud::{Markup, html};
use serde::Deserialize;
use smimekit_service::Role;

use super::{Page, PageError, PageResult, Who, frame, notice, recent_auth, time};
use crate::api::{self, ApplyBody, JobState, PlanAnswer, PlanBody};
use crate::auth::{OperatorRole, ViewerRole};
use crate::jobs::WebJob;
use crate::{AppError, AppState, ClientAddr};

const EXAMPLE: &str = r#"# deploy.toml: the directories' desired S/MIME state
directories = ["local"]

[[people]]
address = "alice@example.org"
certificates = ["alice.pem"]   # upload the files it names below
"#;

fn editor(who: &Who, text: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { (notice("error", e)) }
        @if who.may(Role::Operator) {
            form.card #plan-form method="post" action="/deploy/plan" enctype="multipart/form-data" {
                (who.csrf_field())
                label { "Deploy file (deploy.toml)"
                    textarea name="deploy" spellcheck="false" { (text) }
                }
                div.row {
                    label { "…or load it from a file" input type="file" name="deploy_file" accept=".toml,text/plain"; }
                    label { "The files it names (certificates, CSV, trust chain)" input type="file" name="files" multiple; }
                    label { input type="checkbox" name="refresh" value="1"; " read every directory (no inventory)" }
                    button type="submit" { "Plan" }
                }
            }
        } @else {
            p.muted { "Planning and applying need the operator role." }
        }
    }
}

async fn recent_jobs(page: &Page<ViewerRole>) -> Result<Markup, PageError> {
    let jobs = page.service().jobs(20).await?;
    Ok(html! {
        h2 { "Recent applies" }
        @let applies: Vec<_> = jobs.iter().filter(|j| j.kind == "apply").collect();
        @if applies.is_empty() { p.muted { "None yet." } }
        @else {
            table {
                thead { tr { th { "Job" } th { "Started" } th { "By" } th { "Outcome" } } }
                tbody {
                    @for j in applies {
                        tr {
                            td { a href={ "/deploy/jobs/" (j.id) } { "#" (j.id) } }
                            td { (time(j.started)) }
                            td { (j.actor) " (" (j.frontend) ")" }
                            td { (outcome_badge(j.outcome.as_deref().unwrap_or("running"))) }
                        }
                    }
                }
            }
        }
    })
}

fn outcome_badge(outcome: &str) -> Markup {
    let class = match outcome {
        "ok" => "ok",
        "running" => "running",
        o if o.starts_with("cancel") => "warning",
        _ => "failed",
    };
    html! { span class={"badge " (class)} { (outcome) } }
}

pub(crate) async fn page(page: Page<ViewerRole>) -> PageResult {
    let who = page.who();
    let jobs = recent_jobs(&page).await?;
    let content = html! {
        h1 { "Deployment" }
        p.muted { "The deploy file says what every directory should hold; the plan shows what apply would change, exactly as " code { "smimekit plan" } " prints it." }
        (editor(&who, EXAMPLE, None))
        (jobs)
    };
    Ok(frame(&who, "Deployment", "/deploy", content).into_response())
}

/// Reads the plan form into the API's request.
async fn plan_body(mut form: Multipart) -> Result<PlanBody, AppError> {
    let bad = |m: String| AppError::bad_request(m);
    let mut body = PlanBody {
        name: None,
        deploy: String::new(),
        files: BTreeMap::new(),
        replace_unmanaged: Vec::new(),
        refresh: false,
    };
    let mut from_file = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| bad(format!("the form: {e}")))?
    {
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        let bytes = field
            .bytes()
            .await
            .map_err(|e| bad(format!("{name}: {e}")))?;
        match name.as_str() {
            "deploy" => body.deploy = String::from_utf8_lossy(&bytes).replace("\r\n", "\n"),
            "deploy_file" if !bytes.is_empty() => {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| bad("the deploy file is not UTF-8 text".into()))?;
                from_file = Some((file_name.unwrap_or_else(|| "deploy.toml".into()), text));
            }
            // A folder chosen with the browser's picker sends paths ("certs/alice.pem").
            "files" if !bytes.is_empty() => {
                if let Some(f) = file_name {
                    body.files
                        .insert(f, base64::engine::general_purpose::STANDARD.encode(&bytes));
                }
            }
            "refresh" => body.refresh = true,
            _ => {}
        }
    }
    if let Some((name, text)) = from_file {
        body.name = Some(name);
        body.deploy = text;
    }
    if body.deploy.trim().is_empty() {
        return Err(bad("the deploy file is empty".into()));
    }
    Ok(body)
}

fn plan_markup(who: &Who, answer: &PlanAnswer, ask_password: bool) -> Markup {
    let s = &answer.plan.summary;
    html! {
        section.card #plan {
            h2 { "Plan " span.muted.small { (answer.plan.file) " · " (answer.plan.created) } }
            p {
                span.badge.ok { (s.add) " to add" } " "
                span class={"badge " (if s.remove > 0 { "failed" } else { "info" })} { (s.remove) " to remove" } " "
                span.badge.info { (s.contacts) " contacts to create" } " "
                span.badge.info { (s.trust_updates) " trust chains to update" } " "
                span class={"badge " (if s.not_ready > 0 { "warning" } else { "info" })} { (s.not_ready) " not ready" }
            }
            pre #plan-text { (answer.rendered) }
            @if !answer.has_changes {
                (notice("ok", "Nothing to do: every directory already holds what the deploy file says."))
            } @else if who.may(Role::Operator) {
                form #apply-form method="post" action="/deploy/apply" {
                    (who.csrf_field())
                    input type="hidden" name="plan_id" value=(answer.id);
                    @if answer.removals > 0 {
                        p.warning { "This plan removes " (answer.removals) " certificate(s)." }
                        @if ask_password {
                            label { "Your password (you signed in more than 10 minutes ago)"
                                input type="password" name="password" autocomplete="current-password" required;
                            }
                        }
                    }
                    button #apply type="submit" { "Approve and apply" }
                }
            }
        }
    }
}

pub(crate) async fn plan(
    State(state): State<Arc<AppState>>,
    page: Page<OperatorRole>,
    form: Multipart,
) -> PageResult {
    let who = page.who();
    let body = match plan_body(form).await {
        Ok(b) => b,
        Err(e) => {
            let content = html! { h1 { "Deployment" } (editor(&who, EXAMPLE, Some(&e.message))) };
            return Ok((e.status, frame(&who, "Deployment", "/deploy", content)).into_response());
        }
    };
    let text = body.deploy.clone();
    let content = match api::make_plan(&state, page.service(), body).await {
        Ok(answer) => html! {
            h1 { "Deployment" }
            (plan_markup(&who, &answer, page.needs_reauth()))
            details { summary { "Edit the deploy file and plan again" } (editor(&who, &text, None)) }
        },
        Err(e) => {
            let content = html! {
                h1 { "Deployment" }
                p.error role="alert" #plan-errors { (e.message) }
                (editor(&who, &text, None))
            };
            return Ok((e.status, frame(&who, "Deployment", "/deploy", content)).into_response());
        }
    };
    Ok(frame(&who, "Plan", "/deploy", content).into_response())
}

#[derive(Deserialize)]
pub(crate) struct ApplyForm {
    plan_id: String,
    #[serde(default)]
    password: String,
}

pub(crate) async fn apply(
    State(state): State<Arc<AppState>>,
    page: Page<OperatorRole>,
    ClientAddr(peer): ClientAddr,
    axum::Form(f): axum::Form<ApplyForm>,
) -> PageResult {
    let (page, cookie) = recent_auth(&state, page, &peer, f.password).await?;
    let started = api::start_apply(
        &state,
        &page.0,
        ApplyBody {
            plan_id: Some(f.plan_id),
            plan: None,
        },
    );
    let job = match started {
        Ok(j) => j,
        Err(e) => return Err(PageError(e)),
    };
    let mut res = Redirect::to(&format!("/deploy/jobs/{}", job.id)).into_response();
    if let Some(c) = cookie {
        res.headers_mut().insert(axum::http::header::SET_COOKIE, c);
    }
    Ok(res)
}

/// A progress bar and the last items of a job, or its end with the apply report's steps.
fn live_markup(who: &Who, st: &JobState) -> Markup {
    let last = st.events.last();
    let running = st.state == "running";
    html! {
        p { "State: " span #job-state { (outcome_badge(&st.state)) } }
        @if let Some(e) = last {
            progress #job-progress value=(e.done) max=(e.total.max(1)) { (e.done) "/" (e.total) }
            p.small.muted #job-count { (e.done) " of " (e.total) " done" @if let Some(i) = &e.current_item { " · last: " (i) } }
        } @else if running {
            progress #job-progress {}
            p.small.muted { "Starting…" }
        }
        @if running && who.may(Role::Operator) && st.id.starts_with('w') {
            form method="post" action={ "/deploy/jobs/" (st.id) "/cancel" } {
                (who.csrf_field())
                button.secondary #cancel type="submit" { "Cancel" }
            }
        }
        @if let Some(end) = &st.end {
            @if let Some(err) = &end.error { (notice("error", err)) }
            @if let Some(report) = &end.result { (report_markup(report)) }
        }
        @if let Some(items) = &st.items { (report_markup(&serde_json::json!({ "steps": items }))) }
    }
}

/// The steps of an apply report (as its JSON: directory, target, operation, status, error).
fn report_markup(report: &serde_json::Value) -> Markup {
    let steps = report["steps"].as_array().cloned().unwrap_or_default();
    let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    html! {
        @if let Some(secs) = report["seconds"].as_f64() {
            p.small.muted {
                (report["done"]) " done, " (report["unchanged"]) " unchanged, " (report["failed"]) " failed, "
                (report["not_attempted"]) " not attempted in " (format!("{secs:.1}")) " s"
            }
        }
        @if !steps.is_empty() {
            table #job-steps {
                thead { tr { th { "Directory" } th { "Target" } th { "Operation" } th { "Status" } th { "Detail" } } }
                tbody {
                    @for st in &steps {
                        tr {
                            td { (s(st, "directory")) } td { (s(st, "target")) } td { (s(st, "operation")) }
                            td { span class={"badge " (s(st, "status"))} { (s(st, "status")) } }
                            td.small { (s(st, "error")) }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) async fn job(
    State(state): State<Arc<AppState>>,
    page: Page<ViewerRole>,
    Path(id): Path<String>,
) -> PageResult {
    let st = api::job_state(&state, page.service(), &id).await?;
    let who = page.who();
    let live = st.state == "running" && state.jobs.get(&id).is_some();
    let content = html! {
        p.small { a href="/deploy" { "← Deployment" } }
        h1 { "Apply " (st.id) }
        p.muted { "Started by " (st.actor) @if let Some(r) = st.record { " · job record #" (r) } }
        @if live {
            div.card #job hx-ext="sse" sse-connect={ "/deploy/jobs/" (st.id) "/events" } sse-close="end" {
                div #live sse-swap="progress,end" { (live_markup(&who, &st)) }
            }
            // Without JavaScript, the page reloads itself while the job runs.
            noscript { meta http-equiv="refresh" content="2"; }
        } @else {
            div.card #job { div #live { (live_markup(&who, &st)) } }
        }
        p { a href="/audit" { "See it in the audit log" } }
    };
    Ok(frame(&who, &format!("Apply {}", st.id), "/deploy", content).into_response())
}

/// The job's state as HTML fragments, one per change, `progress` while it runs and one `end`.
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
    page: Page<ViewerRole>,
    Path(id): Path<String>,
) -> PageResult {
    let job = state.jobs.get(&id).ok_or_else(|| {
        PageError(AppError::new(
            StatusCode::NOT_FOUND,
            format!("no job {id} on this server"),
        ))
    })?;
    let who = page.who();
    let stream = fragments(state.clone(), page.service().clone(), who, job);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn fragments(
    state: Arc<AppState>,
    service: smimekit_service::Service,
    who: Who,
    job: Arc<WebJob>,
) -> impl futures_util::Stream<Item = Result<Event, Infallible>> + Send {
    let rx = job.subscribe();
    futures_util::stream::unfold(
        (state, service, who, job, rx, false, true),
        |(state, service, who, job, mut rx, done, first)| async move {
            if done {
                return None;
            }
            if !first && rx.changed().await.is_err() {
                return None;
            }
            rx.borrow_and_update();
            let st = api::job_state(&state, &service, &job.id).await.ok()?;
            let ended = job.end().is_some();
            let html = live_markup(&who, &st).into_string();
            let ev = Event::default()
                .event(if ended { "end" } else { "progress" })
                .data(html);
            Some((Ok(ev), (state, service, who, job, rx, ended, false)))
        },
    )
}

pub(crate) async fn cancel(
    State(state): State<Arc<AppState>>,
    _page: Page<OperatorRole>,
    Path(id): Path<String>,
) -> PageResult {
    let job = state.jobs.get(&id).ok_or_else(|| {
        PageError(AppError::new(
            StatusCode::NOT_FOUND,
            format!("no job {id} on this server"),
        ))
    })?;
    job.cancel();
    Ok(Redirect::to(&format!("/deploy/jobs/{id}")).into_response())
}
