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
use crate::{AppError, AppState, ClientAddr};

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

/// The trust form: the chain's file (name, bytes), the directory, and the password when the
/// push removes certificates and the sign-in is not recent.
struct TrustForm {
    file: Named<Vec<u8>>,
    directory: String,
    password: String,
}

/// Reads the trust form.
async fn trust_form(mut form: Multipart) -> Result<TrustForm, AppError> {
    let (mut file, mut directory, mut password) = (None, String::new(), String::new());
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
            "password" => password = field.text().await.unwrap_or_default(),
            _ => {}
        }
    }
    let file = file
        .filter(|f| !f.data.is_empty())
        .ok_or_else(|| AppError::bad_request("choose the chain's file"))?;
    Ok(TrustForm {
        file,
        directory,
        password,
    })
}

/// What pushing the uploaded chain would change (before → after), with a form to confirm.
pub(crate) async fn trust_preview(page: Page<AdminRole>, form: Multipart) -> PageResult {
    let TrustForm {
        file, directory, ..
    } = trust_form(form).await?;
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
                @if old.iter().any(|c| !in_new(c)) && page.needs_reauth() {
                    label { "Your password (this removes certificates, and you signed in more than 10 minutes ago)"
                        input type="password" name="password" autocomplete="current-password" required;
                    }
                }
                div.row {
                    button type="submit" { "Push this chain" }
                    a.button.secondary href="/trust" { "Cancel" }
                }
            }
        }
    };
    Ok(frame(&who, "Trust preview", "/trust", content).into_response())
}

/// Pushes the previewed chain; one that removes certificates asks for a recent sign-in (or the
/// password, given on the preview) first, as the JSON route does.
pub(crate) async fn trust_push(
    State(state): State<Arc<AppState>>,
    page: Page<AdminRole>,
    ClientAddr(peer): ClientAddr,
    form: Multipart,
) -> PageResult {
    let TrustForm {
        file,
        directory,
        password,
    } = trust_form(form).await?;
    let directory = Some(directory).filter(|d| !d.is_empty());
    let change = api::trust_change(page.service(), directory.as_deref(), &file).await?;
    let (page, cookie) = if change.removed.is_empty() {
        (page, None)
    } else {
        super::recent_auth(&state, page, &peer, password).await?
    };
    page.service()
        .trust_push(&TrustPushRequest {
            files: vec![file],
            directory,
        })
        .await?;
    let mut res = Redirect::to("/trust").into_response();
    if let Some(c) = cookie {
        res.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(res)
}

#[derive(Deserialize, Default)]
pub(crate) struct CaParams {
    #[serde(default)]
    dir: String,
    /// A fixed notice after a change (`revoked`).
    #[serde(default)]
    ok: String,
}

fn ca_link(dir: &str) -> String {
    format!("/ca?dir={}", super::people::q(dir))
}

fn ca_markup(
    who: &Who,
    dir: &str,
    issued: Option<Result<Vec<smimekit_service::IssuedRecord>, AppError>>,
    top: Option<Markup>,
) -> Markup {
    html! {
        h1 { "CA" }
        p.muted { "A smimekit CA folder on this server: what it issued, revocation, CRLs, and certificates for uploaded requests (CSR). The CA's key stays in its key store; a password it needs comes from the server's own sources, never from the browser." }
        @if let Some(t) = top { (t) }
        @if who.may(Role::Admin) {
            form.card.row method="get" action="/ca" {
                label { "CA folder on the server" input name="dir" value=(dir) placeholder="/srv/smimekit/ca"; }
                button type="submit" { "Show" }
            }
        } @else { p.muted { "The CA needs the admin role." } }
        @match issued {
            Some(Ok(list)) => {
                h2 { "Issued" }
                @if list.is_empty() { p.muted { "Nothing issued yet." } }
                @else {
                    table #ca-issued {
                        thead { tr { th { "Serial" } th { "Address" } th { "Valid" } th { "State" } th {} } }
                        tbody {
                            @for r in &list {
                                tr {
                                    td.mono.small { (r.serial) }
                                    td { (r.email) }
                                    td.small { (time(r.not_before)) " – " (time(r.not_after)) }
                                    td {
                                        @match r.revoked_at {
                                            Some(t) => span.badge.failed { "revoked " (time(t)) },
                                            None => span.badge.ok { "issued" },
                                        }
                                    }
                                    td {
                                        @if r.revoked_at.is_none() {
                                            form.inline method="post" action="/ca/revoke" {
                                                (who.csrf_field())
                                                input type="hidden" name="dir" value=(dir);
                                                input type="hidden" name="serial" value=(r.serial);
                                                button.secondary type="submit" { "Revoke…" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                div.grid {
                    section.card {
                        h2 { "Issue for a request (CSR)" }
                        form #ca-issue method="post" action="/ca/issue" enctype="multipart/form-data" {
                            (who.csrf_field())
                            input type="hidden" name="dir" value=(dir);
                            label { "Request (PKCS#10, PEM or DER)" input type="file" name="csr" required; }
                            label { "Address (when the request names none)" input name="email" type="email"; }
                            label { "Days" input name="days" type="number" min="1" max="825" value="365"; }
                            button type="submit" { "Issue and download" }
                        }
                    }
                    section.card {
                        h2 { "CRL" }
                        form #ca-crl method="post" action="/ca/crl" {
                            (who.csrf_field())
                            input type="hidden" name="dir" value=(dir);
                            label { "Valid for (days)" input name="days" type="number" min="1" max="366" value="7"; }
                            button type="submit" { "Sign and download the CRL" }
                        }
                    }
                }
            },
            Some(Err(e)) => (notice("error", &e.message)),
            None => {},
        }
    }
}

async fn ca_issued(
    page: &Page<impl crate::auth::MinRole>,
    dir: &str,
) -> Option<Result<Vec<smimekit_service::IssuedRecord>, AppError>> {
    if dir.is_empty() || !page.who().may(Role::Admin) {
        return None;
    }
    Some(api::issued_by(page.service(), dir).await)
}

pub(crate) async fn ca(page: Page<ViewerRole>, Query(p): Query<CaParams>) -> PageResult {
    let who = page.who();
    let issued = ca_issued(&page, &p.dir).await;
    let top = (p.ok == "revoked")
        .then(|| notice("ok", "Revoked. Sign a new CRL so that clients learn of it."));
    Ok(frame(&who, "CA", "/ca", ca_markup(&who, &p.dir, issued, top)).into_response())
}

#[derive(Deserialize)]
pub(crate) struct RevokeForm {
    dir: String,
    serial: String,
    /// Set on the confirmation page; the first post only asks.
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    password: String,
}

/// Revoke: a confirmation page first (reason, and the password again when the sign-in is not
/// recent), then the revocation.
pub(crate) async fn ca_revoke(
    State(state): State<Arc<AppState>>,
    page: Page<AdminRole>,
    ClientAddr(peer): ClientAddr,
    axum::Form(f): axum::Form<RevokeForm>,
) -> PageResult {
    let confirm = |who: &Who, ask: bool, error: Option<&str>| {
        html! {
            p.small { a href=(ca_link(&f.dir)) { "← CA" } }
            h1 { "Revoke " span.mono { (f.serial) } "?" }
            @if let Some(e) = error { (notice("error", e)) }
            form.card #ca-revoke method="post" action="/ca/revoke" {
                (who.csrf_field())
                input type="hidden" name="dir" value=(f.dir);
                input type="hidden" name="serial" value=(f.serial);
                input type="hidden" name="confirm" value="1";
                label { "Reason"
                    select name="reason" {
                        @for r in ["unspecified", "key-compromise", "affiliation-changed", "superseded", "cessation-of-operation"] {
                            option value=(r) selected[r == f.reason] { (r) }
                        }
                    }
                }
                @if ask {
                    label { "Your password (you signed in more than 10 minutes ago)"
                        input type="password" name="password" autocomplete="current-password" required;
                    }
                }
                div.row {
                    button.danger type="submit" { "Revoke" }
                    a.button.secondary href=(ca_link(&f.dir)) { "Cancel" }
                }
            }
        }
    };
    let who = page.who();
    if f.confirm.is_empty() {
        let body = confirm(&who, page.needs_reauth(), None);
        return Ok(frame(&who, "Revoke", "/ca", body).into_response());
    }
    let svc = page.service().clone();
    let (_page, cookie) = match super::recent_auth(&state, page, &peer, f.password.clone()).await {
        Ok(ok) => ok,
        Err(PageError(e)) => {
            let body = confirm(&who, true, Some(&e.message));
            return Ok((e.status, frame(&who, "Revoke", "/ca", body)).into_response());
        }
    };
    api::revoke_serial(&svc, &f.dir, &f.serial, &f.reason).await?;
    let mut res = Redirect::to(&format!("{}&ok=revoked", ca_link(&f.dir))).into_response();
    if let Some(c) = cookie {
        res.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(res)
}

fn download(name: &str, content_type: &'static str, bytes: Vec<u8>) -> PageResult {
    let disposition = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        name.replace(
            |c: char| !c.is_ascii_alphanumeric() && !"@.-_".contains(c),
            "_"
        )
    ))
    .map_err(|_| AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "file name"))?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

/// Issues a certificate for an uploaded PKCS#10 request; the answer is the certificate (PEM).
pub(crate) async fn ca_issue(page: Page<AdminRole>, mut form: Multipart) -> PageResult {
    let (mut dir, mut csr, mut email, mut days) = (String::new(), None, None, 365u32);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| AppError::bad_request(format!("the form: {e}")))?
    {
        match field.name().unwrap_or("") {
            "dir" => dir = field.text().await.unwrap_or_default(),
            "csr" => {
                let name = field.file_name().unwrap_or("request.csr").to_string();
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| AppError::bad_request(format!("csr: {e}")))?;
                csr = Some(Named::new(name, bytes.to_vec())).filter(|c| !c.data.is_empty());
            }
            "email" => email = field.text().await.ok().filter(|s| !s.trim().is_empty()),
            "days" => {
                let t = field.text().await.unwrap_or_default();
                days = t
                    .trim()
                    .parse()
                    .map_err(|_| AppError::bad_request(format!("days {t:?}: a whole number")))?;
            }
            _ => {}
        }
    }
    let csr = csr.ok_or_else(|| AppError::bad_request("choose the request (CSR) file"))?;
    if csr
        .data
        .windows(11)
        .any(|w| w.eq_ignore_ascii_case(b"PRIVATE KEY"))
    {
        return Err(PageError(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{}: holds a private key; upload the request only (keys never go to the server)",
                csr.name
            ),
        )));
    }
    let issued = page
        .service()
        .ca_issue(&smimekit_service::CaIssueRequest {
            dir: dir.into(),
            ca_secret: None,
            source: smimekit_service::IssueSource::Csr { csr, email },
            days,
            renew: false,
        })
        .await;
    match issued {
        Ok(r) => download(
            &format!("{}.pem", r.email),
            "application/x-pem-file",
            r.pem.into_bytes(),
        ),
        Err(e) => Err(PageError(api::ca_error(e))),
    }
}

#[derive(Deserialize)]
pub(crate) struct CrlForm {
    dir: String,
    #[serde(default)]
    days: Option<u32>,
}

/// Signs a CRL with the CA's key (on the server); the answer is the CRL (PEM).
pub(crate) async fn ca_crl(
    page: Page<AdminRole>,
    axum::Form(f): axum::Form<CrlForm>,
) -> PageResult {
    let crl = page
        .service()
        .ca_crl(&smimekit_service::CaCrlRequest {
            dir: f.dir.into(),
            ca_secret: None,
            days: f.days.unwrap_or(7),
        })
        .await
        .map_err(api::ca_error)?;
    download("ca.crl.pem", "application/x-pem-file", crl.pem.into_bytes())
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
