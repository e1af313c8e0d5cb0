//! The blocking TCP client and server of the connection module's docs, run on loopback
//! (the doc example itself is `no_run`: a doc test must not open sockets).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{SystemTime, UNIX_EPOCH};

use dktp::config::Config;
use dktp::connection::Connection;
use dktp::kex::{PeerKeys, Settings};
use dktp::listener::Listener;
use dktp::pq::OsEntropy;
use dktp::session::{Event, Output};

use dktp::testing::tagged_pair;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn drain(conn: &mut Connection, socket: &mut TcpStream) -> std::io::Result<Vec<Vec<u8>>> {
    let mut messages = Vec::new();
    while let Some(out) = conn.poll_output() {
        match out {
            Output::Transmit(packet) => socket.write_all(&packet)?,
            Output::Event(Event::Message(m)) => messages.push(m.into_vec()),
            Output::Event(_) => {}
        }
    }
    Ok(messages)
}

/// Reads once; returns the messages that arrived (empty at the end of the stream).
fn receive(conn: &mut Connection, socket: &mut TcpStream) -> std::io::Result<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = socket.read(&mut buf)?;
    let _ = if n == 0 {
        conn.handle_end_of_stream(now(), &mut OsEntropy)
    } else {
        conn.handle_bytes(&buf[..n], now(), &mut OsEntropy)
    };
    drain(conn, socket) // after an error this writes the error packet
}

fn server(keys: PeerKeys, tcp: TcpListener) -> Result<usize, Box<dyn std::error::Error>> {
    let listener = Listener::new(Settings::default());
    listener.add(keys);
    let (mut socket, _) = tcp.accept()?;
    let mut conn = listener.accept(now());
    let mut echoed = 0;
    while !conn.is_closed() {
        for m in receive(&mut conn, &mut socket)? {
            conn.send(&m, now())?;
            echoed += 1;
        }
        drain(&mut conn, &mut socket)?;
    }
    Ok(echoed)
}

fn client(keys: PeerKeys, addr: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut socket = TcpStream::connect(addr)?;
    let mut conn = Connection::connect(keys, Settings::default(), now(), &mut OsEntropy)?;
    drain(&mut conn, &mut socket)?;
    while !conn.is_established() {
        receive(&mut conn, &mut socket)?;
        if conn.is_closed() {
            return Err("handshake failed".into());
        }
    }
    conn.send(b"hello", now())?;
    drain(&mut conn, &mut socket)?;
    let mut echo = Vec::new();
    while echo.is_empty() && !conn.is_closed() {
        echo = receive(&mut conn, &mut socket)?;
    }
    assert_eq!(echo, vec![b"hello".to_vec()]);
    conn.close(now())?;
    drain(&mut conn, &mut socket)?;
    Ok(())
}

#[test]
fn blocking_tcp_client_and_server() {
    // Keys made now, so their expiry is a year from the real clock.
    let (ck, sk) = tagged_pair(Config::DEFAULT, 40, now());
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap().to_string();
    let srv = std::thread::spawn(move || server(sk, tcp).map_err(|e| e.to_string()));
    client(ck, &addr).unwrap();
    assert_eq!(srv.join().unwrap(), Ok(1));
}
