//! The JSON API under `/api/v1`. Each endpoint is a data function (extract → service call →
//! serializable answer) that the HTML pages call too, and a thin handler that serializes it.
//! The routes and the OpenAPI document come from one list ([`routes`]), so the document
//! names every route.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{FromRequest, Multipart, Path as UrlPath, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use smimekit_service::deploy::{self, ApplyRequest, DeploySource, Plan, PlanRequest};
use smimekit_service::{
    AuditLogRequest, AuditLogRow, CaRevokeRequest, CaRevokeResult, CertSummary, ErrorKind,
    IssuedRecord, Named, PeoplePage, PeopleQuery, PeopleSort, PersonDetail, PersonStatus,
    PublishRequest, PublishResult, RevocationReason, RevokeTarget, Service, ServiceError,
    TrustPushRequest, TrustResult, UnpublishRequest,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self, Admin, Operator, Viewer};
use crate::jobs::{JobEnd, WebJob};
use crate::{AppError, AppState};

/// Largest deploy-file upload (the deploy file and every file it names) or posted plan.
pub const PLAN_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// Every `/api/v1` route, with its OpenAPI description.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    let big = OpenApiRouter::new()
        .routes(routes!(plan))
        .routes(routes!(apply))
        .layer(axum::extract::DefaultBodyLimit::max(PLAN_BODY_LIMIT));
    OpenApiRouter::new()
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::reauth))
        .routes(routes!(auth::me))
        .routes(routes!(people))
        .routes(routes!(person))
        .routes(routes!(publish_certificate))
        .routes(routes!(unpublish_certificate))
        .routes(routes!(trust, trust_push))
        .routes(routes!(ca_issued))
        .routes(routes!(ca_revoke))
        .routes(routes!(job))
        .routes(routes!(job_events))
        .routes(routes!(job_cancel))
        .routes(routes!(audit))
        .merge(big)
}

// ---------------------------------------------------------------------------------------
// People

/// The people list's filters (`GET /api/v1/people`).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeopleParams {
    /// Part of the address, any case.
    pub query: Option<String>,
    /// Only people in this directory.
    pub directory: Option<String>,
    /// `ready`, `not-ready` or `expiring`.
    #[param(value_type = Option<String>)]
    pub status: Option<PersonStatus>,
    /// 0-based.
    #[serde(default)]
    pub page: usize,
    /// Default 50, at most 1000.
    pub page_size: Option<usize>,
    /// `address` (default), `status` or `expiry`.
    pub sort: Option<String>,
    /// Days before expiry that make a person `expiring` (default 30).
    pub expiring_days: Option<u32>,
}

/// Data function: one page of people.
pub async fn people_page(service: &Service, p: &PeopleParams) -> Result<PeoplePage, AppError> {
    let sort = match p.sort.as_deref().unwrap_or("address") {
        "" | "address" => PeopleSort::Address,
        "status" => PeopleSort::Status,
        "expiry" => PeopleSort::Expiry,
        other => {
            return Err(AppError::bad_request(format!(
                "sort {other:?}: not address, status or expiry"
            )));
        }
    };
    let q = PeopleQuery {
        query: p.query.clone().filter(|s| !s.is_empty()),
        directory: p.directory.clone().filter(|s| !s.is_empty()),
        status: p.status,
        page: p.page,
        page_size: p.page_size,
        sort,
        expiring_days: p.expiring_days,
    };
    // A page walks the service's whole people index (CPU in proportion to it) and a search
    // allocates a flag per person: as many at once as there are cores, the others wait their
    // turn. Measured with bench-web (100,000 people, 50 clients): without the queue the
    // server's peak RSS was 389 MiB instead of 219 MiB, for no gain in latency.
    let _turn = people_turns().acquire().await.map_err(|_| {
        AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        )
    })?;
    Ok(service.people(&q).await?)
}

fn people_turns() -> &'static tokio::sync::Semaphore {
    static TURNS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    TURNS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    })
}

/// People from the inventory, filtered and paged, with counts by status.
#[utoipa::path(get, path = "/api/v1/people", tag = "people", params(PeopleParams),
    responses((status = 200, description = "A page of people (PeoplePage)", body = Object)))]
pub async fn people(
    user: Viewer,
    Query(p): Query<PeopleParams>,
) -> Result<Json<PeoplePage>, AppError> {
    Ok(Json(people_page(&user.service, &p).await?))
}

/// Data function: a person as every directory holds them, linted, with their history.
pub async fn person_detail(service: &Service, address: &str) -> Result<PersonDetail, AppError> {
    Ok(service.person(address).await?)
}

/// A person in every directory: certificates with lint findings and whether Outlook/OWA can
/// encrypt to them, and their audit history.
#[utoipa::path(get, path = "/api/v1/people/{address}", tag = "people",
    params(("address" = String, Path, description = "The e-mail address")),
    responses((status = 200, description = "The person (PersonDetail)", body = Object),
        (status = 400, description = "Not an address")))]
pub async fn person(
    user: Viewer,
    UrlPath(address): UrlPath<String>,
) -> Result<Json<PersonDetail>, AppError> {
    Ok(Json(person_detail(&user.service, &address).await?))
}

// ---------------------------------------------------------------------------------------
// Certificates

/// Where and how to publish.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PublishParams {
    /// The directory (default: the first configured).
    pub directory: Option<String>,
    /// Keep only this certificate.
    #[serde(default)]
    pub replace: bool,
    /// Create an external contact when the address has no entry.
    #[serde(default)]
    pub contact: bool,
}

/// An uploaded certificate as JSON.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PemUpload {
    /// One certificate, PEM.
    pub pem: String,
}

/// An uploaded certificate (PEM or DER), from a multipart field `certificate` or JSON `pem`.
#[derive(Debug)]
pub struct CertUpload(pub Named<Vec<u8>>);

impl FromRequest<Arc<AppState>> for CertUpload {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let too_big = |e: &dyn std::fmt::Display| {
            AppError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("upload: {e} (at most {} bytes)", crate::BODY_LIMIT),
            )
        };
        if ct.starts_with("application/json") {
            let Json(b) = Json::<PemUpload>::from_request(req, state)
                .await
                .map_err(|e| match e.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => too_big(&e.body_text()),
                    _ => AppError::bad_request(format!("upload: {}", e.body_text())),
                })?;
            return Ok(CertUpload(Named::new("upload (pem)", b.pem.into_bytes())));
        }
        if ct.starts_with("multipart/form-data") {
            let mut m = Multipart::from_request(req, state)
                .await
                .map_err(|e| AppError::bad_request(format!("upload: {}", e.body_text())))?;
            while let Some(field) = m
                .next_field()
                .await
                .map_err(|e| AppError::new(e.status(), format!("upload: {}", e.body_text())))?
            {
                if field.name() != Some("certificate") {
                    continue;
                }
                let name = field.file_name().unwrap_or("upload").to_string();
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| AppError::new(e.status(), format!("upload: {}", e.body_text())))?;
                return Ok(CertUpload(Named::new(name, bytes.to_vec())));
            }
            return Err(AppError::bad_request(
                "upload: no multipart field named `certificate`",
            ));
        }
        Err(AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "upload: send multipart/form-data with a `certificate` field, or JSON {\"pem\": …}",
        ))
    }
}

/// Refuses anything but certificates: a private key (PEM `… PRIVATE KEY`) or a PKCS#12 file
/// has no business on the server, and what is left must parse as at least one certificate.
pub fn certificates_only(service: &Service, upload: &Named<Vec<u8>>) -> Result<(), AppError> {
    let d = &upload.data;
    let has_key = d
        .windows(11)
        .any(|w| w.eq_ignore_ascii_case(b"PRIVATE KEY"));
    if has_key {
        return Err(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{}: holds a private key; upload the certificate only (keys never go to the server)",
                upload.name
            ),
        ));
    }
    match service.certificates(upload) {
        Ok(c) if !c.is_empty() => Ok(()),
        Ok(_) => Err(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{}: no certificate in it", upload.name),
        )),
        // The service's message names the upload and why it is not a certificate.
        Err(e) => Err(AppError::new(StatusCode::UNPROCESSABLE_ENTITY, e.message)),
    }
}

/// Data function: publish an uploaded certificate for an address.
pub async fn publish_upload(
    service: &Service,
    address: &str,
    upload: Named<Vec<u8>>,
    p: &PublishParams,
) -> Result<PublishResult, AppError> {
    certificates_only(service, &upload)?;
    let req = PublishRequest {
        address: address.to_string(),
        certificate: upload,
        directory: p.directory.clone().filter(|s| !s.is_empty()),
        contact: p.contact,
        replace: p.replace,
        prune_expired: false,
        force: false,
    };
    Ok(service.publish(&req).await?)
}

/// Publish an uploaded certificate (multipart field `certificate`, PEM or DER; or JSON
/// `{"pem": …}`) to a directory, checked by reading back. Operator.
#[utoipa::path(post, path = "/api/v1/people/{address}/certificates", tag = "certificates",
    params(("address" = String, Path, description = "The e-mail address"), PublishParams),
    request_body(content = PemUpload, description = "JSON {\"pem\"}, or multipart/form-data with a `certificate` field (PEM or DER)"),
    responses((status = 200, description = "What the directory holds now (PublishResult)", body = Object),
        (status = 413, description = "Upload too large"),
        (status = 422, description = "Not a certificate, a private key, or not for this address")))]
pub async fn publish_certificate(
    user: Operator,
    UrlPath(address): UrlPath<String>,
    Query(p): Query<PublishParams>,
    CertUpload(upload): CertUpload,
) -> Result<Json<PublishResult>, AppError> {
    Ok(Json(
        publish_upload(&user.service, &address, upload, &p).await?,
    ))
}

/// Which directory to unpublish from.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DirectoryParam {
    /// The directory (default: the first configured).
    pub directory: Option<String>,
}

/// Data function: remove the certificate with this SHA-1 thumbprint from an address.
pub async fn unpublish_thumbprint(
    service: &Service,
    address: &str,
    thumbprint: &str,
    directory: Option<&str>,
) -> Result<PublishResult, AppError> {
    let detail = service.person(address).await?;
    let target = match directory {
        Some(d) => d.to_string(),
        None => service
            .directory_names()
            .into_iter()
            .next()
            .ok_or_else(|| AppError::bad_request("no directory is configured"))?,
    };
    let entry = detail
        .directories
        .iter()
        .find(|d| d.directory == target)
        .ok_or_else(|| AppError::new(StatusCode::NOT_FOUND, format!("no directory {target:?}")))?;
    if let Some(e) = &entry.error {
        tracing::warn!(directory = %target, error = %e, "unpublish: directory not read");
        return Err(AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("directory {target} could not be read"),
        ));
    }
    let cert = entry
        .certificates
        .iter()
        .find(|c| c.cert.cert.sha1_thumbprint.eq_ignore_ascii_case(thumbprint))
        .ok_or_else(|| {
            AppError::new(
                StatusCode::NOT_FOUND,
                format!("{address}: no certificate {thumbprint} in directory {target}"),
            )
        })?;
    let req = UnpublishRequest {
        address: address.to_string(),
        certificate: Named::new(thumbprint, cert.pem.clone().into_bytes()),
        directory: Some(target),
    };
    Ok(service.unpublish(&req).await?)
}

/// Unpublish a certificate by its SHA-1 thumbprint. Operator; needs a sign-in or
/// re-authentication within the last 10 minutes.
#[utoipa::path(delete, path = "/api/v1/people/{address}/certificates/{thumbprint}", tag = "certificates",
    params(("address" = String, Path, description = "The e-mail address"),
        ("thumbprint" = String, Path, description = "SHA-1 thumbprint, hex"), DirectoryParam),
    responses((status = 200, description = "What the directory holds now (PublishResult)", body = Object),
        (status = 403, description = "Not an operator, no CSRF token, or re-authentication needed (code `reauth`)"),
        (status = 404, description = "No such certificate")))]
pub async fn unpublish_certificate(
    user: Operator,
    UrlPath((address, thumbprint)): UrlPath<(String, String)>,
    Query(p): Query<DirectoryParam>,
) -> Result<Json<PublishResult>, AppError> {
    user.require_recent_auth()?;
    Ok(Json(
        unpublish_thumbprint(
            &user.service,
            &address,
            &thumbprint,
            p.directory.as_deref().filter(|s| !s.is_empty()),
        )
        .await?,
    ))
}

// ---------------------------------------------------------------------------------------
// Trust

/// One directory's trust chain.
#[derive(Debug, Serialize)]
pub struct TrustEntry {
    pub directory: String,
    /// `None` when the directory keeps no trust chain or could not be read (see `note`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<TrustResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Data function: the trust chain of each directory (or of one).
pub async fn trust_chains(
    service: &Service,
    directory: Option<&str>,
) -> Result<Vec<TrustEntry>, AppError> {
    let names = match directory {
        Some(d) => vec![d.to_string()],
        None => service.directory_names(),
    };
    let mut out = Vec::new();
    for name in names {
        out.push(match service.trust_show(Some(&name)).await {
            Ok(chain) => TrustEntry {
                directory: name,
                chain: Some(chain),
                note: None,
            },
            Err(e) if e.kind == ErrorKind::Unsupported => TrustEntry {
                directory: name,
                chain: None,
                note: Some("this directory keeps no trust chain".into()),
            },
            Err(e) if e.kind == ErrorKind::NotFound || e.kind == ErrorKind::Invalid => {
                return Err(e.into());
            }
            Err(e) => {
                tracing::warn!(directory = %name, error = %e, "trust chain not read");
                TrustEntry {
                    directory: name,
                    chain: None,
                    note: Some(format!("could not be read ({})", e.kind.name())),
                }
            }
        });
    }
    Ok(out)
}

/// The trust chain each directory holds.
#[utoipa::path(get, path = "/api/v1/trust", tag = "trust", params(DirectoryParam),
    responses((status = 200, description = "Per directory: its chain (TrustResult) or a note", body = Object)))]
pub async fn trust(
    user: Viewer,
    Query(p): Query<DirectoryParam>,
) -> Result<Json<Vec<TrustEntry>>, AppError> {
    Ok(Json(
        trust_chains(
            &user.service,
            p.directory.as_deref().filter(|s| !s.is_empty()),
        )
        .await?,
    ))
}

/// Where to push a trust chain, and whether only to preview it.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrustPushParams {
    /// The directory (default: the first configured).
    pub directory: Option<String>,
    /// Only say what the push would change (nothing is written).
    #[serde(default)]
    pub preview: bool,
}

/// A trust push (or its preview): the chain before → after, and whether it was written.
#[derive(Debug, Serialize)]
pub struct TrustPushAnswer {
    pub pushed: bool,
    #[serde(flatten)]
    pub change: TrustResult,
}

/// Data function: what pushing `upload` as `directory`'s trust chain would change (every
/// certificate in it must be a CA certificate; a private key is refused).
pub async fn trust_change(
    service: &Service,
    directory: Option<&str>,
    upload: &Named<Vec<u8>>,
) -> Result<TrustResult, AppError> {
    certificates_only(service, upload)?;
    let mut new: Vec<CertSummary> = Vec::new();
    for c in service.certificates(upload)? {
        let c = service.summarize(&c);
        if !c.is_ca {
            return Err(AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "{}: {} is not a CA certificate; the trust chain holds roots and intermediates",
                    upload.name, c.subject
                ),
            ));
        }
        if !new.iter().any(|n| n.sha1_thumbprint == c.sha1_thumbprint) {
            new.push(c);
        }
    }
    let current = service.trust_show(directory).await?;
    let old = current.certificates;
    let has = |v: &[CertSummary], c: &CertSummary| {
        v.iter().any(|o| o.sha1_thumbprint == c.sha1_thumbprint)
    };
    Ok(TrustResult {
        directory: current.directory,
        added: new.iter().filter(|c| !has(&old, c)).cloned().collect(),
        kept: new.iter().filter(|c| has(&old, c)).cloned().collect(),
        removed: old.iter().filter(|c| !has(&new, c)).cloned().collect(),
        certificates: new,
    })
}

/// Replace a directory's trust chain with the uploaded CA certificates (multipart field
/// `certificate`: PEM, DER, PKCS#7 or `.sst`; or JSON `{"pem": …}`), checked by reading back;
/// `preview=true` only says what would change. Admin; a push that removes certificates from
/// the chain needs a sign-in or re-authentication within the last 10 minutes.
#[utoipa::path(post, path = "/api/v1/trust", tag = "trust", params(TrustPushParams),
    request_body(content = PemUpload, description = "JSON {\"pem\"}, or multipart/form-data with a `certificate` field (PEM, DER, PKCS#7 or .sst)"),
    responses((status = 200, description = "pushed, and the chain's change: added, kept, removed, certificates (TrustResult)", body = Object),
        (status = 403, description = "Not an admin, no CSRF token, or re-authentication needed (code `reauth`)"),
        (status = 422, description = "Not certificates, a private key, or a certificate that is not a CA")))]
pub async fn trust_push(
    user: Admin,
    Query(p): Query<TrustPushParams>,
    CertUpload(upload): CertUpload,
) -> Result<Json<TrustPushAnswer>, AppError> {
    let directory = p.directory.filter(|s| !s.is_empty());
    let change = trust_change(&user.service, directory.as_deref(), &upload).await?;
    if p.preview {
        return Ok(Json(TrustPushAnswer {
            pushed: false,
            change,
        }));
    }
    if !change.removed.is_empty() {
        user.require_recent_auth()?;
    }
    let change = user
        .service
        .trust_push(&TrustPushRequest {
            files: vec![upload],
            directory,
        })
        .await?;
    Ok(Json(TrustPushAnswer {
        pushed: true,
        change,
    }))
}

// ---------------------------------------------------------------------------------------
// CA

/// A smimekit CA folder on the server.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CaDirParam {
    /// The CA folder (as `smimekit ca init --dir` made it).
    pub dir: String,
}

/// A CA refusal as the web says it: a locked key means its password belongs on the server.
pub(crate) fn ca_error(e: ServiceError) -> AppError {
    if matches!(e.kind, ErrorKind::Locked { .. }) {
        return AppError::new(
            StatusCode::CONFLICT,
            "the CA key is locked: its password is configured on the server (SMIMEKIT_PASSWORD or the key store's own source), never sent from the browser",
        );
    }
    AppError::from(e)
}

/// Data function: what a CA issued, revoked or not.
pub async fn issued_by(service: &Service, dir: &str) -> Result<Vec<IssuedRecord>, AppError> {
    service.ca_issued(Path::new(dir)).await.map_err(ca_error)
}

/// The certificates a CA issued (serial, address, validity, revocation). Admin.
#[utoipa::path(get, path = "/api/v1/ca/issued", tag = "ca", params(CaDirParam),
    responses((status = 200, description = "The issued records (IssuedRecord), oldest first", body = Object),
        (status = 403, description = "Not an admin")))]
pub async fn ca_issued(
    user: Admin,
    Query(p): Query<CaDirParam>,
) -> Result<Json<Vec<IssuedRecord>>, AppError> {
    Ok(Json(issued_by(&user.service, &p.dir).await?))
}

/// A revocation.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RevokeBody {
    /// The CA folder on the server.
    pub dir: String,
    /// The serial in hex (colons and case ignored), as `GET /api/v1/ca/issued` lists it.
    pub serial: String,
    /// `unspecified` (default), `key-compromise`, `affiliation-changed`, `superseded` or
    /// `cessation-of-operation`.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Data function: revokes a certificate this CA issued (it is in the next CRL).
pub async fn revoke_serial(
    service: &Service,
    dir: &str,
    serial: &str,
    reason: &str,
) -> Result<CaRevokeResult, AppError> {
    let reason = match reason {
        "" => RevocationReason::Unspecified,
        r => RevocationReason::from_name(r).ok_or_else(|| {
            AppError::bad_request(format!("reason {r:?}: not a revocation reason"))
        })?,
    };
    service
        .ca_revoke(&CaRevokeRequest {
            dir: dir.into(),
            target: RevokeTarget::Serial(serial.to_string()),
            reason,
        })
        .await
        .map_err(ca_error)
}

/// Revoke a certificate the CA issued, by serial; sign a new CRL (the CA page) so that
/// clients learn of it. Admin; needs a sign-in or re-authentication within the last 10 minutes.
#[utoipa::path(post, path = "/api/v1/ca/revoke", tag = "ca", request_body = RevokeBody,
    responses((status = 200, description = "Revoked (CaRevokeResult: serial, email, revoked_at, reason)", body = Object),
        (status = 400, description = "Not a serial this CA issued, already revoked, or not a reason"),
        (status = 403, description = "Not an admin, no CSRF token, or re-authentication needed (code `reauth`)")))]
pub async fn ca_revoke(
    user: Admin,
    Json(body): Json<RevokeBody>,
) -> Result<Json<CaRevokeResult>, AppError> {
    user.require_recent_auth()?;
    Ok(Json(
        revoke_serial(
            &user.service,
            &body.dir,
            &body.serial,
            body.reason.as_deref().unwrap_or(""),
        )
        .await?,
    ))
}

// ---------------------------------------------------------------------------------------
// Plan and apply

/// A deploy file and the files it names, uploaded.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PlanBody {
    /// The deploy file's name (for messages), default `deploy.toml`.
    #[serde(default)]
    pub name: Option<String>,
    /// The deploy file (TOML).
    pub deploy: String,
    /// The files it names, by the path it names them with, base64.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Addresses whose unmanaged certificates may be removed.
    #[serde(default)]
    pub replace_unmanaged: Vec<String>,
    /// Read every directory rather than trust a fresh inventory.
    #[serde(default)]
    pub refresh: bool,
}

/// The uploaded files, as the deploy reader asks for them.
#[derive(Debug)]
struct UploadSource {
    files: HashMap<PathBuf, Vec<u8>>,
}

fn clean(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

impl DeploySource for UploadSource {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.files.get(&clean(path)).cloned().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "not among the uploaded files")
        })
    }

    fn list(&self, path: &Path) -> std::io::Result<Vec<String>> {
        let dir = clean(path);
        let mut names: Vec<String> = self
            .files
            .keys()
            .filter_map(|f| f.strip_prefix(&dir).ok())
            .filter(|rest| rest.components().count() == 1)
            .map(|rest| rest.display().to_string())
            .collect();
        if names.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no uploaded file in this folder",
            ));
        }
        names.sort();
        Ok(names)
    }

    fn is_dir(&self, path: &Path) -> bool {
        let dir = clean(path);
        self.files.keys().any(|f| f != &dir && f.starts_with(&dir))
    }
}

/// A plan as the API answers it: its id (for `POST /api/v1/apply`), the plan (without the
/// certificates' bytes) and its text as the CLI renders it.
#[derive(Debug, Serialize)]
pub struct PlanAnswer {
    pub id: String,
    pub rendered: String,
    pub has_changes: bool,
    /// Certificates the plan removes: applying it needs a recent sign-in.
    pub removals: usize,
    pub plan: Plan,
}

/// Plans kept for apply, per process (a plan can also be posted back whole).
#[derive(Debug, Default)]
pub struct PlanCache {
    plans: Mutex<Vec<(String, Plan)>>,
    next: Mutex<u64>,
}

const PLANS_KEPT: usize = 16;

impl PlanCache {
    fn keep(&self, plan: Plan) -> String {
        let n = {
            let mut n = match self.next.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            *n += 1;
            *n
        };
        let id = format!("p{n}");
        let mut plans = match self.plans.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if plans.len() >= PLANS_KEPT {
            plans.remove(0);
        }
        plans.push((id.clone(), plan));
        id
    }

    fn get(&self, id: &str) -> Option<Plan> {
        let plans = match self.plans.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        plans.iter().find(|(i, _)| i == id).map(|(_, p)| p.clone())
    }
}

fn removals(plan: &Plan) -> usize {
    plan.directories
        .iter()
        .flat_map(|d| &d.people)
        .flat_map(|p| &p.changes)
        .filter(|c| matches!(c, deploy::plan::ChangeAction::Remove { .. }))
        .count()
        + plan
            .directories
            .iter()
            .filter_map(|d| d.trust.as_ref())
            .map(|t| t.remove.len())
            .sum::<usize>()
}

/// Data function: reads the uploaded deploy file and plans it.
pub async fn make_plan(
    state: &AppState,
    service: &Service,
    body: PlanBody,
) -> Result<PlanAnswer, AppError> {
    let mut files = HashMap::new();
    for (name, b64) in &body.files {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| AppError::bad_request(format!("files.{name}: not base64: {e}")))?;
        files.insert(clean(Path::new(name)), bytes);
    }
    let source = UploadSource { files };
    let name = body.name.unwrap_or_else(|| "deploy.toml".into());
    let desired = deploy::load(&name, &body.deploy, &source, &service.directory_names())
        .map_err(ServiceError::from)?;
    let plan = service
        .plan(&PlanRequest {
            desired,
            replace_unmanaged: body.replace_unmanaged,
            inventory_max_age: (!body.refresh).then_some(deploy::DEFAULT_INVENTORY_MAX_AGE),
        })
        .await?;
    let id = state.plans.keep(plan.clone());
    Ok(PlanAnswer {
        id,
        rendered: plan.render(),
        has_changes: plan.has_changes(),
        removals: removals(&plan),
        plan: plan.shown(),
    })
}

/// Plan an uploaded deploy file: what apply would change. Operator.
#[utoipa::path(post, path = "/api/v1/plan", tag = "deploy", request_body = PlanBody,
    responses((status = 200, description = "The plan: id, rendered text, the plan as JSON", body = Object),
        (status = 400, description = "The deploy file has problems (each with its file and line)")))]
pub async fn plan(
    State(state): State<Arc<AppState>>,
    user: Operator,
    Json(body): Json<PlanBody>,
) -> Result<Json<PlanAnswer>, AppError> {
    Ok(Json(make_plan(&state, &user.service, body).await?))
}

/// What to apply: a plan this server made (`plan_id`), or a whole plan (as `plan` answers
/// with its certificates, or a saved `smimekit plan --out` file).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ApplyBody {
    #[serde(default)]
    pub plan_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub plan: Option<Plan>,
}

/// A job started: where to watch it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Started {
    pub job: String,
    /// `/api/v1/jobs/{job}/events`.
    pub events: String,
}

/// Data function: starts applying a plan as a job this server watches.
pub fn start_apply(
    state: &AppState,
    user: &Operator,
    body: ApplyBody,
) -> Result<Arc<WebJob>, AppError> {
    let plan = match (body.plan_id, body.plan) {
        (Some(id), None) => state.plans.get(&id).ok_or_else(|| {
            AppError::new(
                StatusCode::NOT_FOUND,
                format!("no plan {id} on this server (plan again, or post the plan itself)"),
            )
        })?,
        (None, Some(plan)) => plan,
        _ => return Err(AppError::bad_request("give either plan_id or plan")),
    };
    if removals(&plan) > 0 {
        user.require_recent_auth()?;
    }
    if !plan.issue.is_empty() {
        return Err(AppError::bad_request(
            "this plan issues certificates: their keys are handed over by the CLI (smimekit apply --deliver); the web does not apply it",
        ));
    }
    let job = user.service.apply(ApplyRequest {
        plan,
        deliver: None,
        ca_secret: None,
        time_budget: None,
        just_planned: false,
    });
    Ok(state.jobs.watch(&user.session.user, job, |r| {
        (
            r.succeeded(),
            if r.succeeded() {
                "ok".into()
            } else {
                format!(
                    "failed: {} failed, {} not attempted",
                    r.failed, r.not_attempted
                )
            },
        )
    }))
}

/// Apply a plan as a job; watch it at `/api/v1/jobs/{id}/events`. Operator; a plan that
/// removes certificates needs a sign-in or re-authentication within the last 10 minutes.
#[utoipa::path(post, path = "/api/v1/apply", tag = "deploy", request_body = ApplyBody,
    responses((status = 202, description = "The job started", body = Started),
        (status = 403, description = "Re-authentication needed (code `reauth`)"),
        (status = 404, description = "No such plan on this server")))]
pub async fn apply(
    State(state): State<Arc<AppState>>,
    user: Operator,
    Json(body): Json<ApplyBody>,
) -> Result<Response, AppError> {
    let job = start_apply(&state, &user, body)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Started {
            events: format!("/api/v1/jobs/{}/events", job.id),
            job: job.id.clone(),
        }),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------
// Jobs

/// A job's state: live (started on this server) or from the store's records.
#[derive(Debug, Serialize)]
pub struct JobState {
    pub id: String,
    pub kind: String,
    pub actor: String,
    /// `running`, or the outcome (`ok`, `failed: …`, `cancelled`).
    pub state: String,
    /// The store's record id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<i64>,
    /// Progress events so far (live jobs only).
    pub events: Vec<smimekit_service::JobEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<JobEnd>,
    /// Per-item results as recorded (store records only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<serde_json::Value>,
}

/// Data function: a job by id (`w…` for jobs of this server, a number for the store's records).
pub async fn job_state(
    state: &AppState,
    service: &Service,
    id: &str,
) -> Result<JobState, AppError> {
    if let Some(j) = state.jobs.get(id) {
        let end = j.end();
        return Ok(JobState {
            id: j.id.clone(),
            kind: j.kind.to_string(),
            actor: j.user.clone(),
            state: end
                .as_ref()
                .map_or_else(|| "running".to_string(), |e| e.outcome.clone()),
            record: j.record(),
            events: j.events(),
            end,
            items: None,
        });
    }
    let not_found = || AppError::new(StatusCode::NOT_FOUND, format!("no job {id}"));
    let n: i64 = id.parse().map_err(|_| not_found())?;
    let rec = service
        .jobs(1000)
        .await?
        .into_iter()
        .find(|r| r.id == n)
        .ok_or_else(not_found)?;
    Ok(JobState {
        id: rec.id.to_string(),
        kind: rec.kind,
        actor: rec.actor,
        state: rec.outcome.unwrap_or_else(|| "running".into()),
        record: Some(rec.id),
        events: Vec::new(),
        end: None,
        items: serde_json::from_str(&rec.items).ok(),
    })
}

/// A job: its progress and, once ended, its result.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "`w…` (this server's jobs) or a store record number")),
    responses((status = 200, description = "The job", body = Object), (status = 404, description = "No such job")))]
pub async fn job(
    State(state): State<Arc<AppState>>,
    user: Viewer,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<JobState>, AppError> {
    Ok(Json(job_state(&state, &user.service, &id).await?))
}

/// The job's events as they happen (server-sent events): `progress` events with
/// `{what, done, total, current_item}` (all of them from the start), then one `end` with the
/// outcome and result; then the stream closes.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = String, Path, description = "A job of this server (`w…`)")),
    responses((status = 200, description = "text/event-stream", content_type = "text/event-stream"),
        (status = 404, description = "No such job on this server")))]
pub async fn job_events(
    State(state): State<Arc<AppState>>,
    _user: Viewer,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, AppError> {
    let job = state.jobs.get(&id).ok_or_else(|| {
        AppError::new(StatusCode::NOT_FOUND, format!("no job {id} on this server"))
    })?;
    Ok(Sse::new(event_stream(job))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Every event of `job` from the first, then its end.
pub fn event_stream(
    job: Arc<WebJob>,
) -> impl futures_util::Stream<Item = Result<Event, Infallible>> + Send {
    let rx = job.subscribe();
    futures_util::stream::unfold(
        (job, rx, 0usize, false),
        |(job, mut rx, i, done)| async move {
            if done {
                return None;
            }
            loop {
                rx.borrow_and_update();
                // The end is read first: once it is set, every event is already there.
                let end = job.end();
                if let Some(e) = job.event(i) {
                    let ev = Event::default().event("progress").json_data(&e).ok()?;
                    return Some((Ok(ev), (job, rx, i + 1, false)));
                }
                if let Some(end) = end {
                    let ev = Event::default().event("end").json_data(&end).ok()?;
                    return Some((Ok(ev), (job, rx, i, true)));
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        },
    )
}

/// Ask a job of this server to stop between items. Operator.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "A job of this server (`w…`)")),
    responses((status = 202, description = "Cancellation asked"), (status = 404, description = "No such job on this server")))]
pub async fn job_cancel(
    State(state): State<Arc<AppState>>,
    _user: Operator,
    UrlPath(id): UrlPath<String>,
) -> Result<StatusCode, AppError> {
    let job = state.jobs.get(&id).ok_or_else(|| {
        AppError::new(StatusCode::NOT_FOUND, format!("no job {id} on this server"))
    })?;
    job.cancel();
    Ok(StatusCode::ACCEPTED)
}

// ---------------------------------------------------------------------------------------
// Audit

/// The audit log's filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only rows at or after this time (Unix seconds).
    pub since: Option<i64>,
    pub address: Option<String>,
    pub directory: Option<String>,
    /// Only this operation (`publish`, `sign-in`, …).
    pub operation: Option<String>,
    /// Only this actor.
    pub actor: Option<String>,
    /// At most this many rows, newest first (default 200, at most 10,000).
    pub limit: Option<usize>,
}

/// The audit log's rows, newest first.
#[derive(Debug, Serialize)]
pub struct AuditAnswer {
    pub store: String,
    /// Rows matching, over all (before the limit).
    pub total: usize,
    pub rows: Vec<AuditLogRow>,
}

/// Data function: the audit log, filtered, newest first.
pub async fn audit_rows(service: &Service, p: &AuditParams) -> Result<AuditAnswer, AppError> {
    let limit = p.limit.unwrap_or(200);
    if limit == 0 || limit > 10_000 {
        return Err(AppError::bad_request(format!(
            "limit {limit}: from 1 to 10000"
        )));
    }
    let log = service
        .audit_log(&AuditLogRequest {
            since: p.since,
            address: p.address.clone().filter(|s| !s.is_empty()),
            directory: p.directory.clone().filter(|s| !s.is_empty()),
        })
        .await?;
    let keep = |r: &AuditLogRow| {
        p.operation
            .as_deref()
            .is_none_or(|o| o.is_empty() || r.operation == o)
            && p.actor
                .as_deref()
                .is_none_or(|a| a.is_empty() || r.actor == a)
    };
    let rows: Vec<AuditLogRow> = log.rows.into_iter().rev().filter(keep).collect();
    let total = rows.len();
    Ok(AuditAnswer {
        store: log.store,
        total,
        rows: rows.into_iter().take(limit).collect(),
    })
}

/// The audit log (every change, sign-in and sign-out, with actor and client address).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, description = "Rows, newest first", body = Object)))]
pub async fn audit(
    user: Viewer,
    Query(p): Query<AuditParams>,
) -> Result<Json<AuditAnswer>, AppError> {
    Ok(Json(audit_rows(&user.service, &p).await?))
}
