//! Baseline for the read benchmarks: a bare hyper 1 server answering every
//! request with a fixed JSON body of the given size.
//! `bare_server 127.0.0.1:0 <body-bytes>`; prints its address on stdout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests, benchmarks and examples: a step that fails stops them"
)]

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let size: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100);
    let mut body = String::from("{\"pad\":\"");
    while body.len() + 2 < size {
        body.push('x');
    }
    body.push_str("\"}");
    let body = Bytes::from(body);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("bare listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                let body = body.clone();
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(body))
                            .expect("static response"),
                    )
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
