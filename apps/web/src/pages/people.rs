//! The dashboard, the people list (search, filters, paging, CSV export) and a person's page
//! (certificates per directory with lint and "can Outlook/OWA encrypt to them", publish an
//! uploaded certificate, unpublish after a confirmation and the password).

use std::sync::Arc;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};
use serde::Deserialize;
use smimekit_service::{
    Named, PersonCert, PersonDetail, PersonStatus, RecipientKind, Role, Severity,
};

use super::{Page, PageError, PageResult, Who, frame, is_htmx, notice, recent_auth, stat};
use crate::auth::{OperatorRole, ViewerRole};
use crate::{AppError, AppState, ClientAddr, api};

/// A path segment, percent-encoded (addresses may hold `+`, `/`, `%`, `?`, `#`).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@!$&'()*+,;=:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query-string value, percent-encoded.
pub(crate) fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn status_badge(s: PersonStatus) -> Markup {
    let label = match s {
        PersonStatus::Ready => "ready",
        PersonStatus::Expiring => "expiring",
        PersonStatus::NotReady => "not ready",
    };
    html! { span class={"badge " (s.name())} { (label) } }
}

fn kind_name(k: Option<RecipientKind>) -> &'static str {
    match k {
        Some(RecipientKind::Mailbox) => "mailbox",
        Some(RecipientKind::Contact) => "contact",
        None => "",
    }
}

/// The date part of an RFC 3339 time.
pub(crate) fn day(t: &str) -> &str {
    t.get(..10).unwrap_or(t)
}

/// A count's colour only when there is something to look at.
fn warn_if(n: usize, class: &'static str) -> &'static str {
    if n > 0 { class } else { "" }
}

/// The counts of everyone matching `directory` (all: `None`) with `expiring_days` as the
/// expiry window: a one-person page of the people list, whose counts are over everyone.
async fn counts(
    svc: &smimekit_service::Service,
    directory: Option<&str>,
    expiring_days: u32,
) -> Result<smimekit_service::PeoplePage, PageError> {
    Ok(api::people_page(
        svc,
        &api::PeopleParams {
            directory: directory.map(str::to_string),
            expiring_days: Some(expiring_days),
            page_size: Some(1),
            ..api::PeopleParams::default()
        },
    )
    .await?)
}

pub(crate) async fn dashboard(page: Page<ViewerRole>) -> PageResult {
    let svc = page.service();
    let now30 = counts(svc, None, 30).await?;
    let (e60, e90) = (
        counts(svc, None, 60).await?.expiring,
        counts(svc, None, 90).await?.expiring,
    );
    let directories = svc.directory_names();
    let mut per_dir: Vec<(String, usize, usize, usize)> = Vec::new();
    for d in &directories {
        let c = counts(svc, Some(d), 30).await?;
        per_dir.push((d.clone(), c.ready, c.expiring, c.not_ready));
    }
    let jobs = svc.jobs(50).await?;
    let last_apply = jobs.iter().find(|j| j.kind == "apply");
    let who = page.who();
    let content = html! {
        h1 { "Dashboard" }
        div.grid {
            (stat("people", now30.total, "", Some("/people")))
            (stat("ready", now30.ready, "ready", Some("/people?status=ready")))
            (stat("not ready", now30.not_ready, warn_if(now30.not_ready, "not-ready"), Some("/people?status=not-ready")))
            (stat("expiring in 30 days", now30.expiring, warn_if(now30.expiring, "expiring"), Some("/people?status=expiring&expiring=30")))
            (stat("expiring in 60 days", e60, warn_if(e60, "expiring"), Some("/people?status=expiring&expiring=60")))
            (stat("expiring in 90 days", e90, warn_if(e90, "expiring"), Some("/people?status=expiring&expiring=90")))
        }
        h2 { "Per directory" }
        table {
            thead { tr { th { "Directory" } th.num { "Ready" } th.num { "Expiring (30 days)" } th.num { "Not ready" } } }
            tbody {
                @for (d, r, e, n) in &per_dir {
                    tr {
                        td { a href={ "/people?directory=" (q(d)) } { (d) } }
                        td.num { (r) } td.num { (e) } td.num { (n) }
                    }
                }
            }
        }
        h2 { "Last apply" }
        div.card {
            @match last_apply {
                Some(j) => {
                    dl.kv {
                        dt { "Started" } dd { (super::time(j.started)) }
                        dt { "By" } dd { (j.actor) " (" (j.frontend) ")" }
                        dt { "Outcome" } dd {
                            @match &j.outcome {
                                Some(o) => span class={"badge " (if o == "ok" { "ok" } else { "failed" })} { (o) },
                                None => span.badge.running { "running" },
                            }
                        }
                    }
                }
                None => p.muted { "No apply has run yet. " a href="/deploy" { "Plan a deployment" } "." },
            }
        }
        h2 { "Directory health" }
        div #health hx-get="/dashboard/health" hx-trigger="load" hx-swap="outerHTML" {
            p.muted { "Each directory is opened to check it. " a href="/dashboard/health" { "Check now" } }
        }
    };
    Ok(frame(&who, "Dashboard", "/", content).into_response())
}

/// Opens every directory (as a publish would) and says which answered.
pub(crate) async fn health(page: Page<ViewerRole>, headers: HeaderMap) -> PageResult {
    let svc = page.service();
    let mut rows = Vec::new();
    for d in svc.directory_names() {
        let r = svc.open_directory(&d).await.map(|_| ());
        rows.push((d, r));
    }
    let table = html! {
        table #health {
            thead { tr { th { "Directory" } th { "State" } } }
            tbody {
                @for (d, r) in &rows {
                    tr {
                        td { (d) }
                        td {
                            @match r {
                                Ok(()) => span.badge.ok { "answering" },
                                Err(e) => { span.badge.failed { "failing" } " " span.small { (e.message) } },
                            }
                        }
                    }
                }
            }
        }
    };
    if is_htmx(&headers) {
        return Ok(table.into_response());
    }
    Ok(frame(
        &page.who(),
        "Directory health",
        "/",
        html! { h1 { "Directory health" } (table) },
    )
    .into_response())
}

#[derive(Deserialize, Default, Debug)]
pub(crate) struct PeopleParams {
    #[serde(default)]
    query: String,
    #[serde(default)]
    directory: String,
    #[serde(default)]
    status: String,
    /// Days that make a person "expiring".
    expiring: Option<u32>,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    page: usize,
}

impl PeopleParams {
    fn status(&self) -> Result<Option<PersonStatus>, PageError> {
        match self.status.as_str() {
            "" => Ok(None),
            s => PersonStatus::parse(s).map(Some).ok_or_else(|| {
                PageError(AppError::bad_request(format!(
                    "status {s:?}: one of ready, expiring, not-ready"
                )))
            }),
        }
    }

    /// The API's parameters for these (the people page shares its data function).
    fn api(&self) -> Result<api::PeopleParams, PageError> {
        Ok(api::PeopleParams {
            query: Some(self.query.trim().to_string()).filter(|s| !s.is_empty()),
            directory: Some(self.directory.clone()).filter(|s| !s.is_empty()),
            status: self.status()?,
            expiring_days: self.expiring,
            sort: Some(self.sort.clone()),
            page: self.page,
            page_size: None,
        })
    }

    /// The query string for these filters on another page (`page` = None: no page).
    fn link(&self, base: &str, page: Option<usize>) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("query", self.query.as_str()),
            ("directory", &self.directory),
            ("status", &self.status),
            ("sort", &self.sort),
        ] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", q(v)));
            }
        }
        if let Some(e) = self.expiring {
            parts.push(format!("expiring={e}"));
        }
        if let Some(p) = page.filter(|p| *p > 0) {
            parts.push(format!("page={p}"));
        }
        if parts.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", parts.join("&"))
        }
    }
}

pub(crate) async fn people(page: Page<ViewerRole>, Query(p): Query<PeopleParams>) -> PageResult {
    let svc = page.service();
    let result = api::people_page(svc, &p.api()?).await?;
    let directories = svc.directory_names();
    let pages = result.total.div_ceil(result.page_size).max(1);
    let first = result.page * result.page_size;
    let content = html! {
        h1 { "People" }
        form.card.row #people-filter method="get" action="/people"
            hx-get="/people" hx-target="#people-results" hx-select="#people-results"
            hx-swap="outerHTML" hx-push-url="true"
            hx-trigger="input changed delay:300ms from:#query, change from:select, submit" {
            label { "Search" input #query type="search" name="query" value=(p.query) placeholder="part of an address"; }
            label { "Directory"
                select name="directory" {
                    option value="" { "all" }
                    @for d in &directories { option value=(d) selected[*d == p.directory] { (d) } }
                }
            }
            label { "Status"
                select name="status" {
                    @for (v, l) in [("", "any"), ("ready", "ready"), ("expiring", "expiring"), ("not-ready", "not ready")] {
                        option value=(v) selected[v == p.status] { (l) }
                    }
                }
            }
            label { "Expiring within"
                select name="expiring" {
                    @for d in [30u32, 60, 90] {
                        option value=(d) selected[p.expiring.unwrap_or(30) == d] { (d) " days" }
                    }
                }
            }
            label { "Sort"
                select name="sort" {
                    @for (v, l) in [("", "address"), ("status", "status"), ("expiry", "expiry")] {
                        option value=(v) selected[v == p.sort] { (l) }
                    }
                }
            }
            button type="submit" { "Filter" }
            a.button.secondary href=(p.link("/people.csv", None)) download { "Export CSV" }
        }
        div #people-results {
            p.muted {
                (result.total) " people"
                " · " span.badge.ready { (result.ready) " ready" }
                " " span.badge.expiring { (result.expiring) " expiring" }
                " " span.badge.not-ready { (result.not_ready) " not ready" }
            }
            table #people {
                thead { tr { th { "Address" } th { "Kind" } th { "Directories" } th.num { "Certificates" } th { "Status" } th { "Earliest expiry" } } }
                tbody {
                    @for r in &result.people {
                        tr {
                            td { a href={ "/people/" (seg(&r.address)) } { (r.address) } }
                            td { (kind_name(r.kind)) }
                            td { (r.directories.join(", ")) }
                            td.num { (r.certificates) }
                            td { (status_badge(r.status)) }
                            td { (r.earliest_expiry.as_deref().map(day).unwrap_or("")) }
                        }
                    }
                    @if result.people.is_empty() {
                        tr { td colspan="6" .muted { "Nobody matches. People appear here once a lookup, publish, plan or directory audit has seen them." } }
                    }
                }
            }
            nav.pager {
                @if result.page > 0 {
                    a href=(p.link("/people", Some(result.page - 1))) rel="prev" { "← Previous" }
                }
                span.muted {
                    @if result.total > 0 { (first + 1) "–" (first + result.people.len()) " of " (result.total) " · " }
                    "page " (result.page + 1) " of " (pages)
                }
                @if result.page + 1 < pages {
                    a href=(p.link("/people", Some(result.page + 1))) rel="next" { "Next →" }
                }
            }
        }
    };
    Ok(frame(&page.who(), "People", "/people", content).into_response())
}

/// Every person matching the filters (all pages), as CSV.
pub(crate) async fn people_csv(
    page: Page<ViewerRole>,
    Query(p): Query<PeopleParams>,
) -> PageResult {
    let q = p.api()?;
    let all = page
        .service()
        .people_all(q.expiring_days.unwrap_or(30))
        .await?;
    let needle = q.query.as_deref().map(str::to_ascii_lowercase);
    let mut w = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| {
        PageError(AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("writing the CSV: {e}"),
        ))
    };
    w.write_record([
        "address",
        "kind",
        "directories",
        "certificates",
        "status",
        "earliest_expiry",
    ])
    .map_err(csv_err)?;
    for r in all.iter().filter(|r| {
        needle.as_deref().is_none_or(|n| r.address.contains(n))
            && q.directory
                .as_deref()
                .is_none_or(|d| r.directories.iter().any(|x| x == d))
            && q.status.is_none_or(|s| r.status == s)
    }) {
        w.write_record([
            r.address.as_str(),
            kind_name(r.kind),
            &r.directories.join(";"),
            &r.certificates.to_string(),
            r.status.name(),
            r.earliest_expiry.as_deref().unwrap_or(""),
        ])
        .map_err(csv_err)?;
    }
    let bytes = w.into_inner().map_err(|e| csv_err(e.into_error().into()))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"people.csv\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize, Default)]
pub(crate) struct PersonParams {
    /// A fixed notice after a change (`published`, `unpublished`), and its directory.
    #[serde(default)]
    ok: String,
    #[serde(default)]
    dir: String,
}

/// Whether Outlook / OWA can encrypt to this certificate: usable for encryption, and no lint
/// error (the OWA profile, against the directory's trust chain).
fn can_encrypt(c: &PersonCert) -> bool {
    c.cert.usable_for_encryption && !c.findings.iter().any(|f| f.severity == Severity::Error)
}

fn yes_no(b: bool, yes: &str, no: &str) -> Markup {
    html! { span class={"badge " (if b { "yes" } else { "no" })} { (if b { yes } else { no }) } }
}

fn person_markup(
    who: &Who,
    p: &PersonDetail,
    directories: &[String],
    top: Option<Markup>,
) -> Markup {
    let address = seg(&p.address);
    html! {
        p.small { a href="/people" { "← People" } }
        h1 { (p.address) }
        @if let Some(t) = top { (t) }
        p {
            "Outlook / OWA can encrypt to them: "
            (yes_no(p.can_encrypt, "yes", "no"))
        }
        @for d in &p.directories {
            section.card {
                h2 {
                    (d.directory) " "
                    @if let Some(k) = d.kind { span.badge.info { (kind_name(Some(k))) } }
                    @else if d.error.is_none() { span.badge.none { "no entry" } }
                    " " (yes_no(d.can_encrypt, "can encrypt", "cannot encrypt"))
                }
                @if let Some(e) = &d.error { (notice("error", e)) }
                @if d.certificates.is_empty() {
                    @if d.error.is_none() { p.muted { "No certificate published here." } }
                } @else {
                    table {
                        thead { tr { th { "Certificate" } th { "Valid until" } th { "Outlook / OWA" } th { "Lint" } th {} } }
                        tbody {
                            @for c in &d.certificates {
                                tr {
                                    td {
                                        div { (c.cert.cert.subject) }
                                        div.small.muted { "issued by " (c.cert.cert.issuer) }
                                        div.small.mono { (c.cert.cert.sha1_thumbprint) }
                                    }
                                    td {
                                        (day(&c.cert.cert.not_after)) " "
                                        span class={"badge " (c.cert.cert.validity)} { (c.cert.cert.validity) }
                                    }
                                    td {
                                        (yes_no(can_encrypt(c), "can encrypt", "cannot encrypt"))
                                        @if let Some(why) = &c.cert.unusable_reason { div.small.muted { (why) } }
                                    }
                                    td {
                                        @if c.findings.is_empty() { span.badge.ok { "clean" } }
                                        @else {
                                            ul.findings {
                                                @for f in &c.findings {
                                                    li class=(f.severity.name()) title=(f.explanation) {
                                                        strong { (f.rule) } " " (f.detail)
                                                    }
                                                }
                                            }
                                        }
                                    }
                                    td {
                                        @if who.may(Role::Operator) {
                                            a.button.secondary href={ "/people/" (address) "/unpublish?directory=" (q(&d.directory)) "&thumbprint=" (c.cert.cert.sha1_thumbprint) } { "Unpublish…" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if who.may(Role::Operator) {
            section.card {
                h2 { "Publish a certificate" }
                form #publish method="post" action={ "/people/" (address) "/publish" } enctype="multipart/form-data" {
                    (who.csrf_field())
                    div.row {
                        label { "Certificate (PEM, DER, .p7b or .sst)" input type="file" name="certificate" required; }
                        label { "Directory"
                            select name="directory" {
                                @for d in directories { option value=(d) { (d) } }
                            }
                        }
                        label { input type="checkbox" name="contact" value="1"; " create as an external contact" }
                        label { input type="checkbox" name="replace" value="1"; " replace the others" }
                        button type="submit" { "Publish" }
                    }
                }
            }
        }
        h2 { "History" }
        @if p.history.is_empty() { p.muted { "Nothing in the audit log for this address." } }
        @else {
            table {
                thead { tr { th { "Time" } th { "Who" } th { "Operation" } th { "Directory" } th { "Result" } } }
                tbody {
                    @for r in p.history.iter().rev() {
                        tr {
                            td { (r.time) } td { (r.actor) " (" (r.frontend) ")" } td { (r.operation) }
                            td { (r.directory) } td { (r.result) }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) async fn person(
    page: Page<ViewerRole>,
    Path(address): Path<String>,
    Query(params): Query<PersonParams>,
) -> PageResult {
    let svc = page.service();
    let p = api::person_detail(svc, &address).await?;
    let top = match params.ok.as_str() {
        "published" => Some(notice("ok", &format!("Published to {}.", params.dir))),
        "unpublished" => Some(notice("ok", &format!("Unpublished from {}.", params.dir))),
        _ => None,
    };
    let who = page.who();
    let content = person_markup(&who, &p, &svc.directory_names(), top);
    Ok(frame(&who, &p.address, "/people", content).into_response())
}

/// The person page again with an error above it (the status of the error).
async fn person_with_error(
    page: &Page<impl crate::auth::MinRole>,
    address: &str,
    e: AppError,
) -> PageResult {
    let svc = page.service();
    let p = api::person_detail(svc, address).await?;
    let who = page.who();
    let content = person_markup(
        &who,
        &p,
        &svc.directory_names(),
        Some(notice("error", &e.message)),
    );
    Ok((e.status, frame(&who, &p.address, "/people", content)).into_response())
}

pub(crate) async fn publish(
    page: Page<OperatorRole>,
    Path(address): Path<String>,
    mut form: Multipart,
) -> PageResult {
    let mut upload = None;
    let mut params = api::PublishParams::default();
    let bad = |m: String| PageError(AppError::bad_request(m));
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| bad(format!("the form: {e}")))?
    {
        match field.name().unwrap_or("") {
            "certificate" => {
                let file = field.file_name().unwrap_or("certificate").to_string();
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| bad(format!("certificate: {e}")))?;
                upload = Some(Named::new(file, bytes.to_vec())).filter(|u| !u.data.is_empty());
            }
            "directory" => params.directory = field.text().await.ok().filter(|s| !s.is_empty()),
            "contact" => params.contact = true,
            "replace" => params.replace = true,
            _ => {}
        }
    }
    let Some(upload) = upload else {
        return person_with_error(
            &page,
            &address,
            AppError::bad_request("choose a certificate file to publish"),
        )
        .await;
    };
    match api::publish_upload(page.service(), &address, upload, &params).await {
        Ok(r) => Ok(Redirect::to(&format!(
            "/people/{}?ok=published&dir={}",
            seg(&r.address),
            q(&r.directory)
        ))
        .into_response()),
        Err(e) => person_with_error(&page, &address, e).await,
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct UnpublishParams {
    #[serde(default)]
    directory: String,
    #[serde(default)]
    thumbprint: String,
}

#[derive(Deserialize, Default)]
pub(crate) struct UnpublishForm {
    #[serde(default)]
    directory: String,
    #[serde(default)]
    thumbprint: String,
    /// The password again, when the sign-in is older than the re-authentication window.
    #[serde(default)]
    password: String,
}

/// The certificate a person has in a directory, by thumbprint.
fn find_cert<'a>(p: &'a PersonDetail, directory: &str, thumbprint: &str) -> Option<&'a PersonCert> {
    p.directories
        .iter()
        .find(|d| d.directory == directory)?
        .certificates
        .iter()
        .find(|c| c.cert.cert.sha1_thumbprint.eq_ignore_ascii_case(thumbprint))
}

fn confirm_markup(
    who: &Who,
    address: &str,
    directory: &str,
    c: &PersonCert,
    ask_password: bool,
    error: Option<&str>,
) -> Markup {
    html! {
        p.small { a href={ "/people/" (seg(address)) } { "← " (address) } }
        h1 { "Unpublish a certificate" }
        @if let Some(e) = error { (notice("error", e)) }
        div.card {
            p { "Remove this certificate of " strong { (address) } " from directory " strong { (directory) } "?" }
            dl.kv {
                dt { "Subject" } dd { (c.cert.cert.subject) }
                dt { "Issuer" } dd { (c.cert.cert.issuer) }
                dt { "Valid until" } dd { (c.cert.cert.not_after) }
                dt { "Thumbprint" } dd.mono { (c.cert.cert.sha1_thumbprint) }
            }
            p.muted { "Senders who look the address up there will no longer find this certificate." }
            form #unpublish method="post" action={ "/people/" (seg(address)) "/unpublish" } {
                (who.csrf_field())
                input type="hidden" name="directory" value=(directory);
                input type="hidden" name="thumbprint" value=(c.cert.cert.sha1_thumbprint);
                @if ask_password {
                    label { "Your password (you signed in more than 10 minutes ago)"
                        input type="password" name="password" autocomplete="current-password" required;
                    }
                }
                div.row {
                    button.danger type="submit" { "Unpublish" }
                    a.button.secondary href={ "/people/" (seg(address)) } { "Cancel" }
                }
            }
        }
    }
}

fn no_such_cert(address: &str, directory: &str, thumbprint: &str) -> PageError {
    PageError(AppError::new(
        StatusCode::NOT_FOUND,
        format!("{address}: no certificate {thumbprint} in directory {directory}"),
    ))
}

/// The confirmation page of an unpublish (a link from the person page, so no JavaScript
/// confirm is needed).
pub(crate) async fn unpublish_confirm(
    page: Page<OperatorRole>,
    Path(address): Path<String>,
    Query(u): Query<UnpublishParams>,
) -> PageResult {
    let p = api::person_detail(page.service(), &address).await?;
    let c = find_cert(&p, &u.directory, &u.thumbprint)
        .ok_or_else(|| no_such_cert(&p.address, &u.directory, &u.thumbprint))?;
    let who = page.who();
    let body = confirm_markup(&who, &p.address, &u.directory, c, page.needs_reauth(), None);
    Ok(frame(&who, "Unpublish", "/people", body).into_response())
}

/// Unpublishes, after a re-authentication when the sign-in is not recent (the new session's
/// cookie is set on the answer).
pub(crate) async fn unpublish(
    State(state): State<Arc<AppState>>,
    page: Page<OperatorRole>,
    ClientAddr(peer): ClientAddr,
    Path(address): Path<String>,
    axum::Form(f): axum::Form<UnpublishForm>,
) -> PageResult {
    let (svc, who) = (page.service().clone(), page.who());
    let check = recent_auth(&state, page, &peer, f.password).await;
    let (page, cookie) = match check {
        Ok(ok) => ok,
        Err(PageError(e)) => {
            let p = api::person_detail(&svc, &address).await?;
            let c = find_cert(&p, &f.directory, &f.thumbprint)
                .ok_or_else(|| no_such_cert(&p.address, &f.directory, &f.thumbprint))?;
            let body = confirm_markup(&who, &p.address, &f.directory, c, true, Some(&e.message));
            return Ok((e.status, frame(&who, "Unpublish", "/people", body)).into_response());
        }
    };
    let result = api::unpublish_thumbprint(
        page.service(),
        &address,
        &f.thumbprint,
        Some(f.directory.as_str()).filter(|d| !d.is_empty()),
    )
    .await;
    let mut res = match result {
        Ok(r) => Redirect::to(&format!(
            "/people/{}?ok=unpublished&dir={}",
            seg(&r.address),
            q(&r.directory)
        ))
        .into_response(),
        Err(e) => person_with_error(&page, &address, e).await?,
    };
    if let Some(c) = cookie {
        res.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(res)
}
