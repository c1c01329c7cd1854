//! The `job-service` binary in production fetches the auth service's JWKS over HTTPS, and still
//! refuses tokens signed with the public development key even when the key set publishes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use access_token::{JwkSet, SigningKey};
use domain::Role;
use test_support::process::Running;
use test_support::{TestDb, TestRedis, free_port};

use crate::binary::{production_env, production_key, with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// An HTTPS server with a self-signed certificate for `localhost` that answers every request
/// with `body` as JSON and counts the requests it served.
struct JwksServer {
    port: u16,
    served: Arc<AtomicUsize>,
    ca_file: std::path::PathBuf,
}

impl JwksServer {
    async fn start(body: String) -> Self {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let ca_file = std::env::temp_dir().join(format!("tv-jwks-ca-{}.pem", free_port()));
        std::fs::write(&ca_file, certified.cert.pem()).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = Arc::new(AtomicUsize::new(0));
        let counter = served.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, body, counter) = (acceptor.clone(), body.clone(), counter.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut head = Vec::new();
                    let mut buf = [0_u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self {
            port,
            served,
            ca_file,
        }
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn production_fetches_the_jwks_over_https_and_refuses_the_development_key() {
    let db = TestDb::migrated().await;
    let redis = TestRedis::new();
    let production = production_key();
    let development = SigningKey::development();
    // A key set that (wrongly) publishes the development key beside the real one.
    let jwks = JwkSet {
        keys: [production.jwks().keys, development.jwks().keys].concat(),
    };
    let server = JwksServer::start(serde_json::to_string(&jwks).unwrap()).await;

    let env = with(
        &production_env(&db, &redis),
        "AUTH_URL",
        Some(&format!("https://localhost:{}", server.port)),
    );
    let mut env = with(&env, "AUTH_JWT_PUBLIC_KEY", None);
    // The system trust store, replaced by the test's own certificate authority.
    env.push((
        "SSL_CERT_FILE".to_owned(),
        server.ca_file.display().to_string(),
    ));
    let addr = env
        .iter()
        .find(|(k, _)| k == "JOBS_ADDR")
        .map(|(_, v)| v.clone())
        .unwrap();
    let mut service = Running::spawn(
        env!("CARGO_BIN_EXE_job-service"),
        &[],
        &env,
        format!("http://{addr}"),
    );
    service
        .wait_until_ok("/readyz", Duration::from_secs(30))
        .await;

    let pool = db.pool();
    let client = reqwest::Client::new();
    let list = |token: String| {
        client
            .get(format!("{}/api/jobs/all", service.base_url))
            .bearer_auth(token)
            .send()
    };
    let user = job_service::testing::mint_user(&pool, &production, Role::User, true)
        .await
        .unwrap();
    let response = list(user.token).await.unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    assert!(server.served.load(Ordering::SeqCst) >= 1);

    let forger = job_service::testing::mint_user(&pool, &development, Role::Admin, true)
        .await
        .unwrap();
    let response = list(forger.token).await.unwrap();
    assert_eq!(response.status(), 401);
}
