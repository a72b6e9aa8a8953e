//! The audit log (filters, CSV export), the trust chains (what each directory holds; upload
//! PEM/DER/`.sst`, preview the change, push), the CA, the users (admin only) and the settings
//! (what the server runs with; no secret is shown).

use std::sync::Arc;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use base64::Engine as _;
use maud::{Markup, html};
use serde::Deserialize;
use smimekit_service::{CertSummary, Named, Role, Secret, TrustPushRequest};

use super::{Page, PageError, PageResult, Who, frame, notice, time};
use crate::api::{self, AuditParams};
use crate::auth::{AdminRole, ViewerRole};
use crate::{AppError, AppState};

#[derive(Deserialize, Default)]
pub(crate) struct AuditForm {
    #[serde(default)]
    address: String,
    #[serde(default)]
    directory: String,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    actor: String,
}

impl AuditForm {
    fn api(&self, limit: usize) -> AuditParams {
        let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        AuditParams {
            since: None,
            address: some(&self.address),
            directory: some(&self.directory),
            operation: some(&self.operation),
            actor: some(&self.actor),
            limit: Some(limit),
        }
    }

    fn query(&self) -> String {
        let parts: Vec<String> = [
            ("address", &self.address),
            ("directory", &self.directory),
            ("operation", &self.operation),
            ("actor", &self.actor),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", super::people::q(v)))
        .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

pub(crate) async fn audit(page: Page<ViewerRole>, Query(f): Query<AuditForm>) -> PageResult {
    let answer = api::audit_rows(page.service(), &f.api(200)).await?;
    let content = html! {
        h1 { "Audit log" }
        form.card.row method="get" action="/audit" {
            label { "Address" input name="address" value=(f.address); }
            label { "Directory" input name="directory" value=(f.directory); }
            label { "Operation" input name="operation" value=(f.operation) placeholder="publish, sign-in…"; }
            label { "Actor" input name="actor" value=(f.actor); }
            button type="submit" { "Filter" }
            a.button.secondary href={ "/audit.csv" (f.query()) } download { "Export CSV" }
        }
        p.muted { (answer.total) " rows" @if answer.total > answer.rows.len() { ", the newest " (answer.rows.len()) " shown" } " · store " (answer.store) }
        table #audit {
            thead { tr { th { "#" } th { "Time" } th { "Actor" } th { "Operation" } th { "Directory" } th { "Address" } th { "Result" } } }
            tbody {
                @for r in &answer.rows {
                    tr {
                        td.num { (r.seq) }
                        td.small { (r.time) }
                        td { (r.actor) span.muted.small { " (" (r.frontend) ")" } }
                        td { (r.operation) }
                        td { (r.directory) }
                        td { @if r.address.contains('@') { a href={ "/people/" (super::people::seg(&r.address)) } { (r.address) } } @else { (r.address) } }
                        td.small { (r.result) }
                    }
                }
            }
        }
    };
    Ok(frame(&page.who(), "Audit log", "/audit", content).into_response())
}

pub(crate) async fn audit_csv(page: Page<ViewerRole>, Query(f): Query<AuditForm>) -> PageResult {
    let answer = api::audit_rows(page.service(), &f.api(10_000)).await?;
    let csv_err = |e: csv::Error| {
        PageError(AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("writing the CSV: {e}"),
        ))
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "seq",
        "time",
        "actor",
        "frontend",
        "operation",
        "directory",
        "address",
        "before",
        "after",
        "result",
        "hash",
    ])
    .map_err(csv_err)?;
    for r in &answer.rows {
        w.write_record([
            r.seq.to_string().as_str(),
            &r.time,
            &r.actor,
            &r.frontend,
            &r.operation,
            &r.directory,
            &r.address,
            &r.before.join(";"),
            &r.after.join(";"),
            &r.result,
            &r.hash,
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
                HeaderValue::from_static("attachment; filename=\"audit.csv\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

fn cert_rows(certs: &[CertSummary], mark: &dyn Fn(&CertSummary) -> &'static str) -> Markup {
    html! {
        table {
            thead { tr { th { "Subject" } th { "Valid until" } th { "Thumbprint" } th {} } }
            tbody {
                @for c in certs {
                    tr {
                        td { (c.subject) }
                        td { (super::people::day(&c.not_after)) " " span class={"badge " (c.validity)} { (c.validity) } }
                        td.mono.small { (c.sha1_thumbprint) }
                        td { @let m = mark(c); @if !m.is_empty() { span class={"badge " (if m == "added" { "ok" } else if m == "removed" { "failed" } else { "info" })} { (m) } } }
                    }
                }
            }
        }
    }
}

fn trust_upload_form(who: &Who, directories: &[String]) -> Markup {
    html! {
        @if who.may(Role::Admin) {
            section.card {
                h2 { "Push a new trust chain" }
                form #trust-upload method="post" action="/trust/preview" enctype="multipart/form-data" {
                    (who.csrf_field())
                    div.row {
                        label { "Chain (PEM, DER, .p7b or .sst)" input type="file" name="chain" required; }
                        label { "Directory" select name="directory" { @for d in directories { option value=(d) { (d) } } } }
                        button type="submit" { "Preview the change" }
                    }
                }
            }
        }
    }
}

pub(crate) async fn trust(page: Page<ViewerRole>) -> PageResult {
    let svc = page.service();
    let chains = api::trust_chains(svc, None).await?;
    let who = page.who();
    let content = html! {
        h1 { "Trust chains" }
        p.muted { "The CA certificates each directory holds for its clients to build chains with (Exchange Online's SMIMECertificateIssuingCA)." }
        @for e in &chains {
            section.card {
                h2 { (e.directory) }
                @if let Some(n) = &e.note { p.muted { (n) } }
                @if let Some(c) = &e.chain {
                    @if c.certificates.is_empty() { p.muted { "Empty." } }
                    @else { (cert_rows(&c.certificates, &|_| "")) }
                }
            }
        }
        (trust_upload_form(&who, &svc.directory_names()))
    };
    Ok(frame(&who, "Trust", "/trust", content).into_response())
}

/// Reads the trust form: the chain's file (name, bytes) and the directory.
async fn trust_form(mut form: Multipart) -> Result<(Named<Vec<u8>>, String), AppError> {
    let (mut file, mut directory) = (None, String::new());
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| AppError::bad_request(format!("the form: {e}")))?
    {
        match field.name().unwrap_or("") {
            "chain" => {
                let name = field.file_name().unwrap_or("chain").to_string();
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| AppError::bad_request(format!("chain: {e}")))?;
                file = Some(Named::new(name, bytes.to_vec()));
            }
            // The preview's confirmation carries the file back, base64.
            "chain_b64" => {
                let text = field.text().await.unwrap_or_default();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|e| AppError::bad_request(format!("chain: {e}")))?;
                file = Some(Named::new("chain", bytes));
            }
            "name" => {
                if let (Some(f), Ok(n)) = (file.as_mut(), field.text().await) {
                    f.name = n;
                }
            }
            "directory" => directory = field.text().await.unwrap_or_default(),
            _ => {}
        }
    }
    let file = file
        .filter(|f| !f.data.is_empty())
        .ok_or_else(|| AppError::bad_request("choose the chain's file"))?;
    Ok((file, directory))
}

/// What pushing the uploaded chain would change (before → after), with a form to confirm.
pub(crate) async fn trust_preview(page: Page<AdminRole>, form: Multipart) -> PageResult {
    let (file, directory) = trust_form(form).await?;
    api::certificates_only(page.service(), &file)?;
    let svc = page.service();
    let new: Vec<CertSummary> = svc
        .certificates(&file)?
        .iter()
        .map(|c| svc.summarize(c))
        .filter(|c| c.is_ca)
        .collect();
    let current = api::trust_chains(svc, Some(&directory)).await?;
    let old: Vec<CertSummary> = current
        .first()
        .and_then(|e| e.chain.as_ref())
        .map(|c| c.certificates.clone())
        .unwrap_or_default();
    let in_old = |c: &CertSummary| old.iter().any(|o| o.sha1_thumbprint == c.sha1_thumbprint);
    let in_new = |c: &CertSummary| new.iter().any(|o| o.sha1_thumbprint == c.sha1_thumbprint);
    let mut all: Vec<CertSummary> = new.clone();
    all.extend(old.iter().filter(|c| !in_new(c)).cloned());
    let who = page.who();
    let content = html! {
        p.small { a href="/trust" { "← Trust chains" } }
        h1 { "Push to " (directory) "?" }
        @if new.is_empty() {
            (notice("error", "The file holds no CA certificate."))
        } @else {
            (cert_rows(&all, &|c| if !in_old(c) { "added" } else if !in_new(c) { "removed" } else { "kept" }))
            form #trust-push method="post" action="/trust/push" enctype="multipart/form-data" {
                (who.csrf_field())
                input type="hidden" name="chain_b64" value=(base64::engine::general_purpose::STANDARD.encode(&file.data));
                input type="hidden" name="name" value=(file.name);
                input type="hidden" name="directory" value=(directory);
                div.row {
                    button type="submit" { "Push this chain" }
                    a.button.secondary href="/trust" { "Cancel" }
                }
            }
        }
    };
    Ok(frame(&who, "Trust preview", "/trust", content).into_response())
}

pub(crate) async fn trust_push(page: Page<AdminRole>, form: Multipart) -> PageResult {
    let (file, directory) = trust_form(form).await?;
    api::certificates_only(page.service(), &file)?;
    page.service()
        .trust_push(&TrustPushRequest {
            files: vec![file],
            directory: Some(directory).filter(|d| !d.is_empty()),
        })
        .await?;
    Ok(Redirect::to("/trust").into_response())
}

#[derive(Deserialize, Default)]
pub(crate) struct CaParams {
    #[serde(default)]
    dir: String,
}

/// The CA: what a smimekit CA folder on this server has issued. Issuing, revoking and CRLs
/// need the CA's key, which stays in its key store: the CLI does them.
pub(crate) async fn ca(page: Page<ViewerRole>, Query(p): Query<CaParams>) -> PageResult {
    let who = page.who();
    let issued = if p.dir.is_empty() || !who.may(Role::Admin) {
        None
    } else {
        Some(page.service().ca_issued(std::path::Path::new(&p.dir)).await)
    };
    let content = html! {
        h1 { "CA" }
        p.muted { "A smimekit CA's key stays in its key store (file, token or Windows store): issuing, revoking and CRLs are " code { "smimekit ca issue|revoke|crl" } " where the key is. Here: what a CA folder on this server has issued." }
        @if who.may(Role::Admin) {
            form.card.row method="get" action="/ca" {
                label { "CA folder on the server" input name="dir" value=(p.dir) placeholder="/srv/smimekit/ca"; }
                button type="submit" { "Show" }
            }
        } @else { p.muted { "Reading a CA folder needs the admin role." } }
        @match issued {
            Some(Ok(list)) => {
                table #ca-issued {
                    thead { tr { th { "Serial" } th { "Address" } th { "Issued" } th { "Not after" } th { "State" } } }
                    tbody {
                        @for r in &list {
                            @let v = serde_json::to_value(r).unwrap_or_default();
                            tr {
                                td.mono.small { (v["serial"].as_str().unwrap_or("")) }
                                td { (v["email"].as_str().or(v["address"].as_str()).unwrap_or("")) }
                                td { (v["issued"].as_str().map(str::to_string).or(v["issued"].as_i64().map(time)).unwrap_or_default()) }
                                td { (v["not_after"].as_str().map(str::to_string).or(v["not_after"].as_i64().map(time)).unwrap_or_default()) }
                                td { @if v["revoked"].is_null() || v["revoked"] == false { span.badge.ok { "valid" } } @else { span.badge.failed { "revoked" } } }
                            }
                        }
                    }
                }
            },
            Some(Err(e)) => (notice("error", &e.message)),
            None => {},
        }
    };
    Ok(frame(&who, "CA", "/ca", content).into_response())
}

fn users_markup(who: &Who, users: &[smimekit_service::WebUserInfo], top: Option<Markup>) -> Markup {
    html! {
        h1 { "Users" }
        @if let Some(t) = top { (t) }
        table #users {
            thead { tr { th { "Name" } th { "Role" } th { "Created" } th { "State" } th {} } }
            tbody {
                @for u in users {
                    tr {
                        td { (u.name) }
                        td { (u.role) }
                        td { (time(u.created)) }
                        td { @match u.locked_until { Some(t) => span.badge.failed { "locked until " (time(t)) }, None => span.badge.ok { "active" } } }
                        td {
                            @if u.name != who.user {
                                form.inline method="post" action={ "/users/" (super::people::seg(&u.name)) "/remove" } {
                                    (who.csrf_field())
                                    button.secondary type="submit" { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "Add a user" }
            form #user-add method="post" action="/users" {
                (who.csrf_field())
                div.row {
                    label { "Name" input name="name" required autocomplete="off"; }
                    label { "Role" select name="role" { option value="viewer" { "viewer" } option value="operator" { "operator" } option value="admin" { "admin" } } }
                    label { "Password" input type="password" name="password" required autocomplete="new-password"; }
                    button type="submit" { "Add" }
                }
            }
        }
    }
}

pub(crate) async fn users(page: Page<AdminRole>) -> PageResult {
    let list = page.service().user_list().await?;
    let who = page.who();
    Ok(frame(&who, "Users", "/users", users_markup(&who, &list, None)).into_response())
}

#[derive(Deserialize)]
pub(crate) struct UserForm {
    name: String,
    role: String,
    password: String,
}

pub(crate) async fn user_add(
    page: Page<AdminRole>,
    axum::Form(f): axum::Form<UserForm>,
) -> PageResult {
    let svc = page.service();
    let added = match Role::parse(&f.role) {
        Ok(role) => svc
            .user_add(&f.name, role, &Secret::new(f.password.into_bytes()))
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = added {
        let e = AppError::from(e);
        let list = svc.user_list().await?;
        let who = page.who();
        let body = users_markup(&who, &list, Some(notice("error", &e.message)));
        return Ok((e.status, frame(&who, "Users", "/users", body)).into_response());
    }
    Ok(Redirect::to("/users").into_response())
}

pub(crate) async fn user_remove(page: Page<AdminRole>, Path(name): Path<String>) -> PageResult {
    page.service().user_remove(&name).await?;
    Ok(Redirect::to("/users").into_response())
}

/// What the server runs with. The configuration's secrets (passwords, keys) are never shown:
/// only names, kinds and limits.
pub(crate) async fn settings(
    State(state): State<Arc<AppState>>,
    page: Page<ViewerRole>,
) -> PageResult {
    let svc = page.service();
    let plugins = svc.plugins();
    let p = state.policy;
    let content = html! {
        h1 { "Settings" }
        section.card {
            h2 { "Server" }
            dl.kv {
                dt { "Version" } dd { (env!("CARGO_PKG_VERSION")) }
                dt { "TLS" } dd { (if state.tls { "served by smimekit-web" } else { "no (loopback, or behind a TLS proxy)" }) }
                dt { "Trusted proxies" } dd { (state.trusted_proxies.len()) }
                dt { "Store" } dd { (svc.store_description().unwrap_or_else(|| "none".into())) }
            }
        }
        section.card {
            h2 { "Sessions and sign-in" }
            dl.kv {
                dt { "Idle timeout" } dd { (p.idle / 60) " min" }
                dt { "Absolute timeout" } dd { (p.absolute / 3600) " h" }
                dt { "Lockout" } dd { "after " (p.max_failures) " failures, for " (p.lockout / 60) " min" }
                dt { "Sign-in rate limit" } dd { (state.login_limit.attempts) " per " (state.login_limit.window) " s per client address" }
                dt { "Re-authentication" } dd { "within " (crate::REAUTH_WINDOW / 60) " min before removals" }
            }
        }
        section.card {
            h2 { "Directories" }
            p.muted { "In search order. Their settings (URLs, bind names, password files) stay in the configuration file; passwords are never shown." }
            ul { @for d in svc.directory_names() { li { (d) } } }
        }
        section.card {
            h2 { "Plugins" }
            table {
                thead { tr { th { "Port" } th { "Id" } th { "Origin" } th { "Description" } } }
                tbody { @for pl in &plugins { tr { td { (pl.port) } td { (pl.id) } td { (pl.origin) } td.small { (pl.description) } } } }
            }
        }
    };
    Ok(frame(&page.who(), "Settings", "/settings", content).into_response())
}
