//! Request/reply over loopback TCP: one connection per call, one JSON line
//! each way. A call is bounded by its caller (core bounds every store and
//! cluster call with its own clock), so nothing here times out; a process
//! that died or froze simply leaves its callers waiting or refused, as a
//! real network would.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Send `req` to `addr` and wait for its reply.
pub async fn call<Q: Serialize, R: DeserializeOwned>(addr: SocketAddr, req: &Q) -> Result<R, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut line = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    line.push(b'\n');
    let mut stream = BufReader::new(stream);
    stream.get_mut().write_all(&line).await.map_err(|e| format!("send to {addr}: {e}"))?;
    let mut reply = String::new();
    match stream.read_line(&mut reply).await {
        Ok(0) => Err(format!("{addr} closed the connection without a reply")),
        Ok(_) => serde_json::from_str(&reply).map_err(|e| format!("bad reply from {addr}: {e}")),
        Err(e) => Err(format!("read from {addr}: {e}")),
    }
}

/// Serve requests on `listener`, each connection in its own task; a
/// handler answering `None` closes the connection with no reply.
pub async fn serve<Q, R, F, Fut>(listener: TcpListener, handler: F)
where
    Q: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(Q) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Option<R>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let handler = handler.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let mut stream = BufReader::new(stream);
            let mut line = String::new();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let Ok(req) = serde_json::from_str::<Q>(&line) else { return };
            if let Some(reply) = handler(req).await {
                if let Ok(mut out) = serde_json::to_vec(&reply) {
                    out.push(b'\n');
                    let _ = stream.get_mut().write_all(&out).await;
                }
            }
        });
    }
}
