//! The benchmark server on tokio: the protocol every peer in benchmarks/peers/
//! speaks (see benchmarks/README.md), written as a tokio user would for speed.
//!   tokio_server --mode echo|sink|mixed --port PORT | --unix PATH
//!
//! --unix listens on a Unix-domain socket file (tokio's UnixListener) instead of
//! 127.0.0.1; the file must not exist and is removed at SIGTERM.
//!
//! One current_thread runtime, so it is a single event loop like the other peers.
//! SIGPIPE needs no handling: Rust's startup code already sets it to SIG_IGN,
//! so a write to a reset peer comes back as an EPIPE error on that connection.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::exit;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UnixListener};
use tokio::signal::unix::{signal, SignalKind};

const USAGE: &str = "usage: tokio_server --mode echo|sink|mixed --port PORT | --unix PATH\n  \
echo:  every byte back, FIN mirrored once flushed.\n  \
sink:  discard until FIN, then reply with the byte count and a newline.\n  \
mixed: a connection whose first byte is 'F' is a sink, any other an echo.\n  \
--unix PATH: a Unix-domain socket instead of 127.0.0.1.\n  \
Prints 'listening on 127.0.0.1:PORT' (or 'listening on unix:PATH') first;\n  \
SIGTERM or SIGINT stops it.\n";

const BACKLOG: u32 = 4096;
const BUFFER_SIZE: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Echo,
    Sink,
    Mixed,
}

fn bad_usage(why: &str) -> ! {
    eprint!("tokio_server: {why}\n{USAGE}");
    exit(2);
}

/// Where the server listens.
enum Place {
    Port(u16),
    Unix(String),
}

/// Parses `--mode` and one of `--port` and `--unix`; anything else is a usage error (exit 2).
fn parse_args() -> (Mode, Place) {
    let mut mode = None;
    let mut port = None;
    let mut path = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--help", _) => {
                print!("{USAGE}");
                exit(0);
            }
            ("--mode", Some(m)) if m == "echo" => mode = Some(Mode::Echo),
            ("--mode", Some(m)) if m == "sink" => mode = Some(Mode::Sink),
            ("--mode", Some(m)) if m == "mixed" => mode = Some(Mode::Mixed),
            ("--mode", _) => bad_usage("--mode must be echo, sink or mixed"),
            ("--port", Some(p)) => match p.parse() {
                Ok(p) => port = Some(p),
                Err(_) => bad_usage("--port must be 0..65535"),
            },
            ("--unix", Some(p)) if !p.is_empty() => path = Some(p),
            _ => bad_usage(&format!("unknown argument {arg}")),
        }
    }
    match (mode, port, path) {
        (Some(m), Some(p), None) => (m, Place::Port(p)),
        (Some(m), None, Some(p)) => (m, Place::Unix(p)),
        (None, _, _) => bad_usage("--mode is required"),
        _ => bad_usage("give either --port or --unix"),
    }
}

/// TcpListener::bind cannot set the backlog, so build the socket by hand.
fn listen(port: u16) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    socket.listen(BACKLOG)
}

/// Read, write all of it, read again: the peer's reading speed bounds ours,
/// and the one buffer is reused for the life of the connection.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> std::io::Result<()> {
    echo_with(stream, vec![0u8; BUFFER_SIZE]).await
}

async fn echo_with<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mut buf: Vec<u8>,
) -> std::io::Result<()> {
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return stream.shutdown().await; // mirror the FIN
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn sink<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> std::io::Result<()> {
    sink_from(stream, vec![0u8; BUFFER_SIZE], 0).await
}

/// `total`: what the caller already read from this stream.
async fn sink_from<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mut buf: Vec<u8>,
    mut total: u64,
) -> std::io::Result<()> {
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    stream.write_all(format!("{total}\n").as_bytes()).await?;
    stream.shutdown().await
}

/// The fairness row's server: the flood starts with 'F' and is discarded, the
/// ping-pong beside it is echoed.
async fn mixed<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> std::io::Result<()> {
    let mut buf = vec![0u8; BUFFER_SIZE];
    let n = stream.read(&mut buf).await?;
    if n == 0 {
        return stream.shutdown().await;
    }
    if buf[0] == b'F' {
        return sink_from(stream, buf, n as u64).await;
    }
    stream.write_all(&buf[..n]).await?;
    echo_with(stream, buf).await
}

/// Errors (ECONNRESET, EPIPE...) end this connection only; dropping the
/// stream closes it.
async fn serve(stream: TcpStream, mode: Mode) {
    let _ = stream.set_nodelay(true);
    serve_stream(stream, mode).await
}

async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, mode: Mode) {
    let _ = match mode {
        Mode::Echo => echo(&mut stream).await,
        Mode::Sink => sink(&mut stream).await,
        Mode::Mixed => mixed(&mut stream).await,
    };
}

async fn accept_loop(listener: TcpListener, mode: Mode) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, mode));
            }
            // e.g. EMFILE: report it and keep serving the connections we have.
            Err(e) => eprintln!("tokio_server: accept: {e}"),
        }
    }
}

/// accept_loop on a Unix-domain socket (no TCP_NODELAY there).
async fn accept_unix_loop(listener: UnixListener, mode: Mode) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_stream(stream, mode));
            }
            Err(e) => eprintln!("tokio_server: accept: {e}"),
        }
    }
}

/// Serves until SIGTERM or SIGINT; returning drops the runtime and with it
/// every connection task.
async fn run_until_signal(serving: impl std::future::Future<Output = ()>) {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = serving => {}
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// The benchmark driver waits for the listening line, so it is flushed at once.
fn say_listening(where_: &str) {
    println!("listening on {where_}");
    let _ = std::io::stdout().flush();
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    match parse_args() {
        (mode, Place::Port(port)) => {
            let listener = listen(port).unwrap_or_else(|e| {
                eprintln!("tokio_server: listen on 127.0.0.1:{port}: {e}");
                exit(1);
            });
            let real_port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
            say_listening(&format!("127.0.0.1:{real_port}"));
            run_until_signal(accept_loop(listener, mode)).await;
        }
        (mode, Place::Unix(path)) => {
            let listener = UnixListener::bind(&path).unwrap_or_else(|e| {
                eprintln!("tokio_server: listen on unix:{path}: {e}");
                exit(1);
            });
            say_listening(&format!("unix:{path}"));
            run_until_signal(accept_unix_loop(listener, mode)).await;
            // Dropping the listener leaves the file behind.
            let _ = std::fs::remove_file(&path);
        }
    }
}
