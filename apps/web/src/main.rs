//! `smimekit-web`: serve the web admin, and manage its users.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use smimekit_service::{Config, Role, Secret, Service, ServiceBuilder, SessionPolicy};
use smimekit_web::cli::{Cli, Command, UserCommand};
use smimekit_web::{AppState, router};

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

fn service(config: Option<&PathBuf>) -> anyhow::Result<Service> {
    let config = Config::load(config.map(PathBuf::as_path))?;
    Ok(ServiceBuilder::default()
        .config(config)
        .actor(smimekit_service::os_user(), "web")
        .build()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let svc = service(cli.config.as_ref())?;
    match cli.command {
        Command::Serve {
            listen,
            insecure_http,
        } => {
            if !listen.ip().is_loopback() && !insecure_http {
                bail!(
                    "--listen {listen}: plain HTTP is served on a loopback address only (give --insecure-http behind a TLS proxy)"
                );
            }
            let app = router(AppState {
                service: svc,
                policy: SessionPolicy::default(),
                tls: false,
            });
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("--listen {listen}"))?;
            println!("smimekit-web: listening on http://{listen}");
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
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
