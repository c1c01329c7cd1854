//! `auth-service`: serves the API; `auth-service migrate` applies migrations and exits;
//! `auth-service db-roles` creates the job service's and the worker's database roles (re-run
//! after every `migrate`); `auth-service grant-admin <email>` makes an existing user an admin.

use std::process::ExitCode;

use auth_service::{Application, Settings};
use clap::{Parser, Subcommand};
use domain::{Email, Role};

#[derive(Parser)]
#[command(name = "auth-service", version, about = "Task Vault's auth service")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Create or update the job service's and the worker's database roles, named (with their
    /// passwords) by `JOBS_DATABASE_URL` and `WORKER_DATABASE_URL`, with exactly the grants
    /// each needs; run as the schema owner after every `migrate`.
    DbRoles,
    /// Make the existing user with this email address an admin.
    GrantAdmin {
        /// The user's email address.
        email: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    // Only serving needs every setting checked: a migration Job has no signing key to give.
    let settings = match Settings::load().and_then(|s| match command {
        Command::Serve => s.resolve().map(|_| s),
        Command::Migrate | Command::DbRoles | Command::GrantAdmin { .. } => Ok(s),
    }) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("auth-service: {error}");
            return ExitCode::from(2);
        }
    };
    service_kit::telemetry::init(&settings.log_format);
    let result = match command {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(&settings).await,
        Command::DbRoles => db_roles(&settings).await,
        Command::GrantAdmin { email } => grant_admin(&settings, &email).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("auth-service: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    let app = Application::build(settings)
        .await
        .map_err(|e| e.to_string())?;
    app.run().await.map_err(|e| format!("server failed: {e}"))
}

async fn migrate(settings: &Settings) -> Result<(), String> {
    let applied = persistence::migrate::run_pending(&settings.database_url)
        .await
        .map_err(|e| e.to_string())?;
    println!("applied {applied} migration(s)");
    Ok(())
}

async fn db_roles(settings: &Settings) -> Result<(), String> {
    use persistence::roles::{Service, ServiceRole};
    let mut roles = Vec::new();
    for (service, name, url) in [
        (
            Service::Jobs,
            "JOBS_DATABASE_URL",
            &settings.jobs_database_url,
        ),
        (
            Service::Worker,
            "WORKER_DATABASE_URL",
            &settings.worker_database_url,
        ),
    ] {
        let url = url
            .as_deref()
            .filter(|url| !url.trim().is_empty())
            .ok_or_else(|| format!("{name} is required (postgres://ROLE:PASSWORD@host/db)"))?;
        roles.push(ServiceRole::from_url(service, url).map_err(|e| format!("{name}: {e}"))?);
    }
    let unclassified = persistence::roles::apply(&settings.database_url, &roles)
        .await
        .map_err(|e| e.to_string())?;
    for role in &roles {
        println!(
            "role {} ready for the {}",
            role.name,
            match role.service {
                Service::Jobs => "job service",
                Service::Worker => "worker",
            }
        );
    }
    if !unclassified.is_empty() {
        eprintln!(
            "auth-service: warning: no service role may use these tables (not in persistence::roles::TABLES): {}",
            unclassified.join(", ")
        );
    }
    Ok(())
}

async fn grant_admin(settings: &Settings, email: &str) -> Result<(), String> {
    let email = Email::parse(email, "email")
        .map_err(|_| format!("`{email}` is not a valid email address"))?;
    persistence::migrate::run_pending(&settings.database_url)
        .await
        .map_err(|e| e.to_string())?;
    let mut conn = persistence::pool::connect(&settings.database_url)
        .await
        .map_err(|e| e.to_string())?;
    match persistence::users::set_role(&mut conn, &email, Role::Admin)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(user) => {
            println!("{} ({}) is now an admin", user.email, user.id);
            Ok(())
        }
        None => Err(format!(
            "no user with email {email}; they must sign up first"
        )),
    }
}
