//! A real webhook receiver for tests: an HTTP server on a free loopback port that records
//! every request (headers and raw body) and answers as told: 2xx, a 500 for the next n
//! requests, or never (it hangs).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub event_id: String,
    pub event_type: String,
    pub signature: String,
    pub body: Vec<u8>,
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Accept,
    /// 500 for this many more requests, then accept.
    FailNext(u32),
    /// 500 always.
    FailAlways,
    /// Never answer (the sender's timeout ends it).
    Hang,
}

#[derive(Default)]
struct Shared {
    received: Vec<Received>,
    attempts: usize,
}

/// The running receiver.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl Receiver {
    /// Starts a receiver that answers as `behaviour` says.
    pub async fn start(behaviour: Behaviour) -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("an address").port();
        let receiver = Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            shared: Arc::default(),
            behaviour: Arc::new(Mutex::new(behaviour)),
        };
        let state = web::Data::new(receiver.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/hook", web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("the receiver listens")
        .run();
        tokio::spawn(server);
        receiver
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().expect("lock") = behaviour;
    }

    /// Every request accepted with 2xx, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().expect("lock").received.clone()
    }

    /// Every request that arrived, answered or not.
    pub fn attempts(&self) -> usize {
        self.shared.lock().expect("lock").attempts
    }
}

async fn receive(
    state: web::Data<Receiver>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let answer = {
        let mut behaviour = state.behaviour.lock().expect("lock");
        let mut shared = state.shared.lock().expect("lock");
        shared.attempts += 1;
        match *behaviour {
            Behaviour::Accept => {
                shared.received.push(Received {
                    event_id: header("Agora-Event-Id"),
                    event_type: header("Agora-Event-Type"),
                    signature: header("Agora-Signature"),
                    body: body.to_vec(),
                });
                Some(200)
            }
            Behaviour::FailNext(n) => {
                *behaviour = if n <= 1 {
                    Behaviour::Accept
                } else {
                    Behaviour::FailNext(n - 1)
                };
                Some(500)
            }
            Behaviour::FailAlways => Some(500),
            Behaviour::Hang => None,
        }
    };
    match answer {
        Some(200) => HttpResponse::Ok().finish(),
        Some(_) => HttpResponse::InternalServerError().finish(),
        None => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            HttpResponse::Ok().finish()
        }
    }
}
