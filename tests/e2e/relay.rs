//! A loopback TCP relay the fault tests put between a client and its servers: bytes pass
//! through untouched (mTLS included). Each connection goes to the next upstream that
//! accepts it (round robin, skipping those that refuse), so with several upstreams it is
//! a load balancer. Changing the upstreams closes every connection through it, so
//! clients reconnect to the new set; `cut` also stops listening, so new connections are
//! refused as they are when a server is gone, and `restore` listens on the same port
//! again.
//!
//! It runs on a runtime of its own: the harness blocks the test's thread while a CP
//! starts, and a CP behind the relay may need it to start.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub struct Relay {
    pub addr: SocketAddr,
    upstreams: watch::Sender<Vec<SocketAddr>>,
    rt: Option<tokio::runtime::Runtime>,
    listening: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Relay {
    /// A relay listening on a free loopback port, to `upstreams`.
    pub fn start(upstreams: Vec<SocketAddr>) -> Relay {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let listener = {
            let _in = rt.enter();
            TcpListener::from_std(listener).unwrap()
        };
        let mut relay = Relay {
            addr: listener.local_addr().unwrap(),
            upstreams: watch::channel(upstreams).0,
            rt: Some(rt),
            listening: None,
        };
        relay.listen(listener);
        relay
    }

    fn listen(&mut self, listener: TcpListener) {
        let upstreams = self.upstreams.subscribe();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = self.rt.as_ref().unwrap().spawn(async move {
            // Dropping the set aborts every pipe, which closes both of its sockets.
            let mut pipes = tokio::task::JoinSet::new();
            let mut next = 0usize;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => {
                        let Ok((mut down, _)) = accepted else { continue };
                        let mut changed = upstreams.clone();
                        let ups = changed.borrow_and_update().clone();
                        next = next.wrapping_add(1);
                        pipes.spawn(async move {
                            for i in 0..ups.len() {
                                let up = ups[(next + i) % ups.len()];
                                if let Ok(mut up) = TcpStream::connect(up).await {
                                    tokio::select! {
                                        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                                        _ = changed.changed() => {}
                                    }
                                    return;
                                }
                            }
                        });
                    }
                    Some(_) = pipes.join_next(), if !pipes.is_empty() => {}
                }
            }
        });
        self.listening = Some((stop, task));
    }

    /// Sends new connections to `upstreams` only, and closes the open ones.
    pub fn route_to(&self, upstreams: Vec<SocketAddr>) {
        self.upstreams.send_replace(upstreams);
    }

    /// Drops every connection and stops listening.
    pub async fn cut(&mut self) {
        if let Some((stop, task)) = self.listening.take() {
            let _ = stop.send(());
            task.await.unwrap();
        }
    }

    /// Listens again on the same address.
    pub async fn restore(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            let bound = self
                .rt
                .as_ref()
                .unwrap()
                .spawn(TcpListener::bind(self.addr));
            match bound.await.unwrap() {
                Ok(l) => break l,
                Err(e) => {
                    assert!(Instant::now() < deadline, "cannot listen again: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        self.listen(listener);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
