//! `spawn_app()`: a daemon on port 0 over a fresh, migrated database of its own, with fast
//! restarts and fault injection on; plus users, keys and polling helpers. Logs only with
//! TEST_LOG set.

use sincro_core::store::users;
use sincro_core::supervision::RestartPolicy;
use sincro_whatsapp::app::{Application, Options};
use sincro_whatsapp::config::{Config, LogFormat};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Once;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;
use uuid::Uuid;

pub const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

pub fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            sincro_whatsapp::logging::init(LogFormat::Text, "debug,hyper=info,tokio_postgres=info");
        }
    });
}

/// Creates an empty database for one test and returns its URL.
pub async fn fresh_database() -> String {
    let name = format!("sw_test_{}", Uuid::new_v4().simple());
    let (client, conn) = tokio_postgres::connect(&format!("{SERVER}/postgres"), NoTls)
        .await
        .expect("the test PostgreSQL on 127.0.0.1:5432 must run (see .ci/run)");
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    format!("{SERVER}/{name}")
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

/// The environment a test daemon starts from.
pub fn base_env(database_url: &str, data_dir: &std::path::Path) -> HashMap<String, String> {
    HashMap::from([
        ("DATABASE_URL".to_string(), database_url.to_string()),
        (
            "ENCRYPTION_KEY".to_string(),
            sincro_core::seal::Sealer::generate_env_value("t1"),
        ),
        ("DATA_DIR".to_string(), data_dir.display().to_string()),
        (
            "NODE_ID".to_string(),
            format!("test-{}", Uuid::new_v4().simple()),
        ),
        ("SHUTDOWN_TIMEOUT_SECS".to_string(), "10".to_string()),
        // Many daemons run at once in this process; PostgreSQL allows 100 connections.
        ("DB_POOL_SIZE".to_string(), "6".to_string()),
        // The simulators and the tests' file servers listen on loopback, which media links
        // may not reach otherwise.
        (
            "MEDIA_FETCH_ALLOW".to_string(),
            "127.0.0.1/32,::1".to_string(),
        ),
    ])
}

pub fn fast_restarts() -> RestartPolicy {
    RestartPolicy {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        max_failures: 3,
        window: Duration::from_secs(30),
    }
}

pub struct TestApp {
    pub app: Option<Application>,
    pub base: String,
    pub database_url: String,
    pub env: HashMap<String, String>,
    pub http: reqwest::Client,
    pub _data_dir: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    init_logs();
    let database_url = fresh_database().await;
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut env = base_env(&database_url, data_dir.path());
    customize(&mut env);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    build_app(env, database_url, data_dir, http).await
}

/// Starts a daemon from `env` on port 0 with fast restarts and fault injection: the one
/// start-up path of [`spawn_app_with`] and [`spawn_app_sharing`].
async fn build_app(
    env: HashMap<String, String>,
    database_url: String,
    data_dir: tempfile::TempDir,
    http: reqwest::Client,
) -> TestApp {
    let config = Config::from_map(&env).expect("test configuration");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = Options {
        restart_policy: fast_restarts(),
        fault_injection: true,
    };
    let app = Application::build(config, listener, options)
        .await
        .expect("application starts");
    TestApp {
        base: format!("http://{}", app.addr()),
        app: Some(app),
        database_url,
        env,
        http,
        _data_dir: data_dir,
    }
}

impl TestApp {
    pub fn app(&self) -> &Application {
        self.app.as_ref().expect("running")
    }

    pub fn pool(&self) -> &deadpool_postgres::Pool {
        &self.app().context().pool
    }

    /// A new user and its API key.
    pub async fn user(&self, email: &str, admin: bool) -> (Uuid, String) {
        let mut client = self.pool().get().await.unwrap();
        let (created, _) = users::create_with_key(&mut client, email, None, admin)
            .await
            .unwrap();
        (
            created.usuario_id,
            created.key.plaintext.expose().to_string(),
        )
    }

    pub fn get(&self, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
    }

    pub fn post(&self, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
    }

    pub fn patch(&self, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.http
            .patch(format!("{}{path}", self.base))
            .bearer_auth(key)
    }

    pub fn delete(&self, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.http
            .delete(format!("{}{path}", self.base))
            .bearer_auth(key)
    }

    pub async fn shutdown(&mut self) -> sincro_whatsapp::app::ShutdownReport {
        self.app.take().expect("running").shutdown().await
    }
}

/// Polls `check` until it returns Some or `limit` passes.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Asserts the JSON error shape and returns the body.
pub async fn expect_error(resp: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let body: serde_json::Value = resp.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], code, "error code in {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    body
}

/// The plan PostgreSQL takes for `sql` with `params`, as `EXPLAIN (<options> FORMAT JSON)`
/// gives it (`options`: e.g. `""`, or `"ANALYZE,"` to run it and count rows).
pub async fn plan_of(
    client: &deadpool_postgres::Client,
    options: &str,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> serde_json::Value {
    let explain = client
        .prepare(&format!("EXPLAIN ({options} FORMAT JSON) {sql}"))
        .await
        .unwrap();
    client.query_one(&explain, params).await.unwrap().get(0)
}

/// The secret part of an API key `swk_<prefix>_<secret>`. The secret is base64url, whose
/// alphabet has `_`, so splitting at the last `_` would sometimes return a fragment of it.
pub fn key_secret(key: &str) -> &str {
    key.splitn(3, '_')
        .nth(2)
        .expect("a key of the shape swk_<prefix>_<secret>")
}

/// A second daemon on the same database and ENCRYPTION_KEY as `other` (another node).
pub async fn spawn_app_sharing(other: &TestApp) -> TestApp {
    init_logs();
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut env = other.env.clone();
    env.insert("DATA_DIR".into(), data_dir.path().display().to_string());
    env.insert(
        "NODE_ID".into(),
        format!("test-{}", Uuid::new_v4().simple()),
    );
    build_app(
        env,
        other.database_url.clone(),
        data_dir,
        other.http.clone(),
    )
    .await
}

impl TestApp {
    /// A connection row (Lite session or Business number) of `user`.
    pub async fn connection(&self, user: Uuid, tipo: &str) -> Uuid {
        let client = self.pool().get().await.unwrap();
        client
            .query_one(
                "INSERT INTO configuracion_mensajeria_usuario (usuario_id, plataforma, configuracion)
                 VALUES ($1, 'whatsapp', jsonb_build_object('tipo_conexion', $2::text)) RETURNING id",
                &[&user, &tipo],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// Sends a batch through the running Ingest actor and waits for its commit.
    pub async fn ingest(
        &self,
        items: Vec<sincro_core::ingest::InboundItem>,
    ) -> sincro_core::ingest::IngestReport {
        use sincro_core::ingest::IngestMessage;
        let ingest = self
            .app()
            .context()
            .actors
            .children
            .ingest
            .get()
            .expect("ingest runs");
        match ingest
            .call(
                |reply| IngestMessage::Batch { items, reply },
                Some(Duration::from_secs(30)),
            )
            .await
            .unwrap()
        {
            ractor::rpc::CallResult::Success(result) => result.expect("batch commits"),
            other => panic!("ingest call: {other:?}"),
        }
    }
}

/// A Business number connected through the API, on an account of the Graph simulator whose
/// webhooks go to this daemon.
#[derive(Debug, Clone)]
pub struct BusinessNumber {
    pub connection_id: Uuid,
    pub phone_number_id: String,
    pub waba_id: String,
    pub display_phone_number: String,
    pub access_token: String,
    pub app_secret: String,
    pub verify_token: String,
}

/// A daemon whose GRAPH_API_BASE is an in-process Graph simulator on 127.0.0.1:0.
pub async fn spawn_business_app(
    config: sincro_sim::graph::GraphSimConfig,
) -> (TestApp, sincro_sim::graph::GraphSimHandle) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = sincro_sim::graph::start(listener, config)
        .await
        .expect("graph simulator");
    let base = sim.base_url();
    let app = spawn_app_with(|env| {
        env.insert("GRAPH_API_BASE".into(), base);
    })
    .await;
    (app, sim)
}

impl TestApp {
    /// Creates a simulator account, connects it for the key's user with
    /// `POST /v1/business/numbers`, then points the account's webhooks at this daemon (the
    /// simulator performs Meta's handshake against `/webhooks/whatsapp` first).
    pub async fn business_number(&self, sim_base: &str, key: &str) -> BusinessNumber {
        let account: serde_json::Value = self
            .http
            .post(format!("{sim_base}/sim/accounts"))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let text = |k: &str| account[k].as_str().expect("account field").to_string();
        let resp = self
            .post("/v1/business/numbers", key)
            .json(&serde_json::json!({
                "phone_number_id": text("phone_number_id"),
                "waba_id": text("waba_id"),
                "access_token": text("access_token"),
                "app_secret": text("app_secret"),
                "verify_token": text("verify_token"),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            201,
            "connect: {}",
            resp.text().await.unwrap()
        );
        let created: serde_json::Value = resp.json().await.unwrap();
        let connection_id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
        // The actor syncs templates from Meta at start; tests that add templates to the store
        // directly must not have them undone by that sync (a daemon run as a process is not
        // reachable this way; its tests add none).
        if let Some(app) = &self.app {
            app.context()
                .actors
                .children
                .business_handle()
                .number(connection_id)
                .await
                .expect("the number's actor runs")
                .start_done()
                .await
                .expect("the number's start work ends");
        }
        let subscribed = self
            .http
            .post(format!(
                "{sim_base}/v23.0/{}/subscribed_apps",
                text("waba_id")
            ))
            .bearer_auth(text("access_token"))
            .json(&serde_json::json!({
                "override_callback_uri": format!("{}/webhooks/whatsapp", self.base),
                "verify_token": text("verify_token"),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            subscribed.status().as_u16(),
            200,
            "subscribe: {}",
            subscribed.text().await.unwrap()
        );
        BusinessNumber {
            connection_id,
            phone_number_id: text("phone_number_id"),
            waba_id: text("waba_id"),
            display_phone_number: text("display_phone_number"),
            access_token: text("access_token"),
            app_secret: text("app_secret"),
            verify_token: text("verify_token"),
        }
    }

    /// POSTs a webhook body signed with `app_secret` (None: no signature header).
    pub async fn post_webhook(&self, body: &[u8], app_secret: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/webhooks/whatsapp", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(secret) = app_secret {
            req = req.header(
                "x-hub-signature-256",
                sincro_core::business::webhook::sign(secret, body),
            );
        }
        req.send().await.unwrap()
    }

    /// Sends through the number's actor as the Dispatcher does.
    pub async fn business_send(
        &self,
        number: &BusinessNumber,
        usuario_id: Uuid,
        to: &str,
        body: serde_json::Value,
        attempt: u32,
    ) -> sincro_core::connection::SendOutcome {
        let conn = eventually(Duration::from_secs(10), || async {
            self.app()
                .context()
                .shared
                .connections
                .get(number.connection_id)
        })
        .await
        .expect("the number's actor registered");
        let kind = body["type"].as_str().unwrap_or("read").to_string();
        conn.send(
            sincro_core::connection::OutboundMessage {
                message_id: Uuid::now_v7(),
                usuario_id,
                connection_id: number.connection_id,
                to: to.to_string(),
                kind,
                body,
                attempt,
                departure: None,
            },
            Duration::from_secs(30),
        )
        .await
    }

    /// Waits until every webhook inbox row is drained (a row is marked in the drain's
    /// transaction, so what it stored is visible by then); false if `limit` passed first.
    pub async fn inbox_drained(&self, limit: Duration) -> bool {
        eventually(limit, || async {
            let left = self
                .count(
                    "SELECT count(*) FROM webhook_inbox WHERE processed_at IS NULL",
                    &[],
                )
                .await;
            (left == 0).then_some(())
        })
        .await
        .is_some()
    }

    /// Waits until a session of this test's database waits on a lock (`wait_event` names which
    /// kind, e.g. `advisory`, or any kind when None); panics after 30 s saying `what`.
    pub async fn until_waiting_on_lock(&self, wait_event: Option<&str>, what: &str) {
        eventually(Duration::from_secs(30), || async {
            let waiting = self
                .count(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'
                       AND ($1::text IS NULL OR wait_event = $1)",
                    &[&wait_event],
                )
                .await;
            (waiting > 0).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("{what}"));
    }

    /// Makes this test's store refuse the message `external_id` (a trigger in the test's own
    /// database, `refuse_poison`), as it would a value it cannot hold.
    pub async fn refuse_message(&self, external_id: &str) {
        let client = self.pool().get().await.unwrap();
        client
            .batch_execute(&format!(
                "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                   IF NEW.external_id = '{external_id}' THEN
                     RAISE EXCEPTION 'this store refuses the poison message';
                   END IF;
                   RETURN NEW;
                 END $$;
                 CREATE TRIGGER refuse_poison BEFORE INSERT ON mensajes_conversacion
                   FOR EACH ROW EXECUTE FUNCTION refuse_poison();"
            ))
            .await
            .unwrap();
    }

    /// The daemon's `/metrics` (Prometheus text).
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// One number from a query returning a single bigint.
    pub async fn count(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> i64 {
        let client = self.pool().get().await.unwrap();
        client.query_one(sql, params).await.unwrap().get(0)
    }
}

impl TestApp {
    /// Waits until this node has heartbeated `rounds` more times: each round renews its leases
    /// and has it reconcile what it runs. A check that something did NOT happen waits for the
    /// rounds in which it would have happened, not for a fixed time.
    pub async fn heartbeat_rounds(&self, rounds: usize) {
        let node = self.env["NODE_ID"].clone();
        let client = self.pool().get().await.unwrap();
        let mut since: f64 = client
            .query_one("SELECT extract(epoch FROM now())::float8", &[])
            .await
            .unwrap()
            .get(0);
        for round in 0..rounds {
            let beat = eventually(Duration::from_secs(30), || async {
                let at: f64 = client
                    .query_one(
                        "SELECT extract(epoch FROM heartbeat_at)::float8 FROM nodes WHERE id = $1",
                        &[&node],
                    )
                    .await
                    .ok()?
                    .get(0);
                (at > since).then_some(at)
            })
            .await;
            since = beat.unwrap_or_else(|| panic!("node {node} missed heartbeat {round}"));
        }
    }
}
