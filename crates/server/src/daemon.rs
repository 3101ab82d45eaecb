//! Starting the service: the runtime, the service object, the first
//! administrator, then the API with the dispatcher and scheduler it starts.
//! It sits above every other module, so none of them imports it.

use crate::config::ServiceConfig;
use crate::error::{Error, Result};
use crate::service::Service;

/// Runs the service until it is stopped (Ctrl-C or SIGTERM).
pub fn serve(mut config: ServiceConfig) -> Result<()> {
    // Made here, when the service is about to serve, and not by every
    // command that opens a data directory: a recovery brings the old
    // certificate back first, and the agents recognise only that one.
    if config.tls_self_signed && config.tls_cert.is_none() {
        crate::db::make_private_dir(&config.data_dir)?;
        let (cert, key) = crate::tls::ensure_self_signed(&config.data_dir)?;
        config.tls_cert = Some(cert);
        config.tls_key = Some(key);
    }
    // Fails only when a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("coffer-http")
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move {
        let service = Service::open(config)?;
        if let Some((name, password)) = service.bootstrap_admin()? {
            match password {
                Some(p) => {
                    // Shown once, on the terminal that started the service;
                    // it is not logged.
                    println!("Created the administrator {name:?} with the one-time password:\n\n    {p}\n\nLog in and change it (PUT /api/v1/users/{name}/password). It is not shown again.");
                }
                None => println!(
                    "Created the administrator {name:?} with the password from COFFER_ADMIN_PASSWORD."
                ),
            }
        }
        crate::api::run(service).await
    })
}
