//! `smimekit-web`: serve the web admin, and manage its users.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use axum::serve::ListenerExt as _;
use clap::Parser;
use smimekit_service::{Config, Role, Secret, Service, ServiceBuilder};
use smimekit_web::cli::{Cli, Command, UserCommand};
use smimekit_web::{AppState, IpNet, router};

fn password(file: Option<&PathBuf>) -> anyhow::Result<Secret> {
    let text = match file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("{}: cannot read the password file", f.display()))?,
        None => rpassword::prompt_password("Password: ").context("reading the password")?,
    };
    Ok(Secret::new(
        text.lines().next().unwrap_or("").as_bytes().to_vec(),
    ))
}

fn service(config: &Config) -> anyhow::Result<Service> {
    Ok(ServiceBuilder::default()
        .config(config.clone())
        .actor(smimekit_service::os_user(), "web")
        .build()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    let svc = service(&config)?;
    match cli.command {
        Command::Serve {
            listen,
            insecure_http,
            tls_cert,
            tls_key,
        } => {
            let tls = match (&tls_cert, &tls_key) {
                (Some(c), Some(k)) => Some(smimekit_web::tls::server_config(c, k)?),
                _ => None,
            };
            if tls.is_none() && !listen.ip().is_loopback() && !insecure_http {
                bail!(
                    "--listen {listen}: plain HTTP is served on a loopback address only (give --tls-cert and --tls-key, or --insecure-http behind a TLS proxy)"
                );
            }
            let mut state = AppState::new(svc);
            state.tls = tls.is_some();
            state.trusted_proxies = config
                .web
                .trusted_proxies
                .iter()
                .map(|p| {
                    IpNet::parse(p).with_context(|| {
                        format!("[web] trusted_proxies: {p:?} is not an address or network")
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            if let Some(n) = config.web.sign_in_per_minute {
                state.login_limit = smimekit_web::LoginLimit {
                    attempts: n,
                    window: 60,
                };
            }
            let app = router(state);
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("--listen {listen}"))?;
            let bound = listener.local_addr()?;
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            match tls {
                Some(tls) => {
                    let listener = smimekit_web::tls::TlsListener::new(listener, tls)?;
                    println!("smimekit-web: listening on https://{bound}");
                    axum::serve(
                        listener.tap_io(|_| {}),
                        app.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(shutdown)
                    .await?;
                }
                None => {
                    println!("smimekit-web: listening on http://{bound}");
                    axum::serve(
                        listener,
                        app.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(shutdown)
                    .await?;
                }
            }
        }
        Command::User(u) => match u {
            UserCommand::Add {
                name,
                role,
                password_file,
            } => {
                let role = Role::parse(&role)?;
                let pw = password(password_file.as_ref())?;
                svc.user_add(&name, role, &pw).await?;
                println!("user {name} added ({role})");
            }
            UserCommand::List => {
                for u in svc.user_list().await? {
                    let locked = if u.locked_until.is_some() {
                        " (locked)"
                    } else {
                        ""
                    };
                    println!("{}\t{}{locked}", u.name, u.role);
                }
            }
            UserCommand::Remove { name } => {
                svc.user_remove(&name).await?;
                println!("user {name} removed");
            }
            UserCommand::Passwd {
                name,
                password_file,
            } => {
                let pw = password(password_file.as_ref())?;
                svc.user_passwd(&name, &pw).await?;
                println!("password of {name} changed");
            }
        },
    }
    Ok(())
}
