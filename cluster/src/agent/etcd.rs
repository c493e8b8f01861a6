//! The store on etcd's v3 API through the `etcd-client` crate (gRPC). Works against Debian's
//! etcd 3.4.23 as well as 3.5+: the agent uses only range, txn, put, delete, watch (with
//! compaction reported as a cancel carrying the compact revision) and lease
//! grant/keepalive/revoke, all in etcd since 3.0.
//!
//! Connections are made from a chosen network namespace: a socket keeps the netns it was created
//! in, so the client reaches etcd from the node's netns without any thread of the caller (or a
//! tokio worker) ever switching namespaces.

use std::fs::File;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchOptions};

use super::store::{KeyValue, Listing, Store, StoreError, StoreResult, StoreWatch, WatchEvent, WatchItem};

/// How long one request may take before the store counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// An etcd cluster, reached through any of its client endpoints.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").finish_non_exhaustive()
    }
}

fn parse_endpoint(e: &str) -> Result<SocketAddr, String> {
    let hostport = e.strip_prefix("http://").ok_or_else(|| {
        format!("etcd endpoint {e:?}: only http://IP:PORT endpoints are supported (no TLS, no host names yet)")
    })?;
    hostport.trim_end_matches('/').parse().map_err(|err| format!("etcd endpoint {e:?}: {err}"))
}

/// Open a TCP connection to the first endpoint that answers, from `netns` when given.
async fn connect_any(
    addrs: Arc<Vec<SocketAddr>>,
    netns: Option<Arc<File>>,
) -> std::io::Result<hyper_util::rt::TokioIo<tokio::net::TcpStream>> {
    let mut last = std::io::Error::other("no etcd endpoint");
    for a in addrs.iter() {
        let sock = match &netns {
            Some(ns) => {
                let a = *a;
                podnet::internals::netns::run_in(ns.as_ref(), move || {
                    if a.is_ipv4() {
                        tokio::net::TcpSocket::new_v4()
                    } else {
                        tokio::net::TcpSocket::new_v6()
                    }
                })
                .map_err(|e| std::io::Error::other(e.to_string()))??
            }
            None if a.is_ipv4() => tokio::net::TcpSocket::new_v4()?,
            None => tokio::net::TcpSocket::new_v6()?,
        };
        match tokio::time::timeout(Duration::from_secs(2), sock.connect(*a)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(hyper_util::rt::TokioIo::new(s));
            }
            Ok(Err(e)) => last = std::io::Error::new(e.kind(), format!("connect {a}: {e}")),
            Err(_) => last = std::io::Error::new(std::io::ErrorKind::TimedOut, format!("connect {a} timed out")),
        }
    }
    Err(last)
}

impl EtcdStore {
    /// A client for `endpoints` (`http://IP:PORT`), connecting from the netns `netns` (a file such
    /// as `/run/netns/node1`; `None`: the caller's current netns). Connects lazily: an
    /// unreachable etcd is reported by the first request, and every later request reconnects,
    /// trying the endpoints in order, so one dead member of a cluster costs nothing.
    pub async fn connect(endpoints: &[String], netns: Option<&std::path::Path>) -> Result<EtcdStore, podnet::Error> {
        let addrs = Self::check_endpoints(endpoints)?;
        let op = "connect to etcd";
        let netns = match netns {
            Some(p) => Some(Arc::new(
                podnet::internals::netns::open(p).map_err(|e| e.into_error(format!("open netns {}", p.display())))?,
            )),
            None => None,
        };
        let addrs = Arc::new(addrs);
        let connector = tower::service_fn(move |_uri: tonic::transport::Uri| connect_any(addrs.clone(), netns.clone()));
        let channel = tonic::transport::Endpoint::from_static("http://etcd.invalid")
            .connect_timeout(Duration::from_secs(2))
            .timeout(REQUEST_TIMEOUT)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .connect_with_connector_lazy(connector);
        let client = Client::from_channel(etcd_client::Channel::Tonic(channel), None)
            .await
            .map_err(|e| podnet::Error::new(podnet::ErrorKind::Io, op, e))?;
        Ok(EtcdStore { client })
    }

    /// Check endpoints before starting anything: `http://IP:PORT` each, at least one.
    pub fn check_endpoints(endpoints: &[String]) -> Result<Vec<SocketAddr>, podnet::Error> {
        let op = "check etcd endpoints";
        if endpoints.is_empty() {
            return Err(podnet::Error::invalid(op, "no etcd endpoint given"));
        }
        endpoints.iter().map(|e| parse_endpoint(e)).collect::<Result<_, _>>().map_err(|m| podnet::Error::invalid(op, m))
    }

    fn c(&self) -> Client {
        self.client.clone()
    }
}

fn err(op: impl Into<String>, e: etcd_client::Error) -> StoreError {
    let unavailable = match &e {
        etcd_client::Error::GRpcStatus(s) => matches!(
            s.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled | tonic::Code::Unknown
        ),
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    };
    StoreError { op: op.into(), message: e.to_string(), unavailable }
}

async fn timed<T>(op: &str, f: impl std::future::Future<Output = Result<T, etcd_client::Error>>) -> StoreResult<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| err(op, e)),
        Err(_) => Err(StoreError::unavailable(op, "no answer in time")),
    }
}

fn kv(k: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(k.key()).into_owned(),
        value: k.value().to_vec(),
        lease: k.lease(),
        create_revision: k.create_revision(),
    }
}

/// A watch on an etcd prefix.
pub struct EtcdWatch {
    // Dropping the watcher cancels the watch on the server.
    _watcher: etcd_client::WatchStream,
}

impl StoreWatch for EtcdWatch {
    async fn next(&mut self) -> StoreResult<WatchItem> {
        loop {
            let m = self._watcher.message().await.map_err(|e| err("watch", e))?;
            let Some(m) = m else { return Err(StoreError::unavailable("watch", "the watch stream ended")) };
            if m.compact_revision() > 0 {
                return Ok(WatchItem::Compacted { compact_revision: m.compact_revision() });
            }
            if m.canceled() {
                return Err(StoreError::failed("watch", format!("canceled by etcd: {}", m.cancel_reason())));
            }
            if m.created() && m.events().is_empty() {
                continue;
            }
            let revision = m.header().map(|h| h.revision()).unwrap_or(0);
            let events = m
                .events()
                .iter()
                .filter_map(|e| {
                    let k = e.kv()?;
                    Some(match e.event_type() {
                        EventType::Put => WatchEvent::Put(kv(k)),
                        EventType::Delete => WatchEvent::Delete(String::from_utf8_lossy(k.key()).into_owned()),
                    })
                })
                .collect();
            return Ok(WatchItem::Events { events, revision });
        }
    }
}

impl Store for EtcdStore {
    type Watch = EtcdWatch;

    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>> {
        let r = timed(&format!("get {key}"), self.c().get(key, None)).await?;
        Ok(r.kvs().first().map(kv))
    }

    async fn list(&self, prefix: &str) -> StoreResult<Listing> {
        let r = timed(&format!("list {prefix}"), self.c().get(prefix, Some(GetOptions::new().with_prefix()))).await?;
        Ok(Listing { kvs: r.kvs().iter().map(kv).collect(), revision: r.header().map(|h| h.revision()).unwrap_or(0) })
    }

    async fn watch(&self, prefix: &str, from_revision: i64) -> StoreResult<EtcdWatch> {
        let opts = WatchOptions::new().with_prefix().with_start_revision(from_revision);
        let w = timed(&format!("watch {prefix}"), self.c().watch(prefix, Some(opts))).await?;
        Ok(EtcdWatch { _watcher: w })
    }

    async fn create(&self, key: &str, value: &[u8], lease: i64) -> StoreResult<bool> {
        let opts = (lease != 0).then(|| PutOptions::new().with_lease(lease));
        let txn =
            Txn::new().when([Compare::version(key, CompareOp::Equal, 0)]).and_then([TxnOp::put(key, value, opts)]);
        Ok(timed(&format!("create {key}"), self.c().txn(txn)).await?.succeeded())
    }

    async fn put(&self, key: &str, value: &[u8], lease: i64) -> StoreResult<()> {
        let opts = (lease != 0).then(|| PutOptions::new().with_lease(lease));
        timed(&format!("put {key}"), self.c().put(key, value, opts)).await.map(|_| ())
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        timed(&format!("delete {key}"), self.c().delete(key, None)).await.map(|_| ())
    }

    async fn grant(&self, ttl: Duration) -> StoreResult<i64> {
        Ok(timed("grant lease", self.c().lease_grant(ttl.as_secs().max(1) as i64, None)).await?.id())
    }

    async fn keep_alive(&self, lease: i64) -> StoreResult<Option<Duration>> {
        let op = format!("keep lease {lease:x} alive");
        let (mut keeper, mut stream) = timed(&op, self.c().lease_keep_alive(lease)).await?;
        timed(&op, keeper.keep_alive()).await?;
        match timed(&op, stream.message()).await? {
            Some(m) if m.ttl() > 0 => Ok(Some(Duration::from_secs(m.ttl() as u64))),
            Some(_) => Ok(None),
            None => Err(StoreError::unavailable(op, "the keepalive stream ended")),
        }
    }

    async fn revoke(&self, lease: i64) -> StoreResult<()> {
        match timed(&format!("revoke lease {lease:x}"), self.c().lease_revoke(lease)).await {
            Err(e) if e.message.contains("requested lease not found") => Ok(()),
            r => r.map(|_| ()),
        }
    }
}
