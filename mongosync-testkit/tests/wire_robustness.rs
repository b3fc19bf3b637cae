//! Bad bytes never crash or hang the server: each malformed message gets the treatment a real
//! server gives it (an error reply or a closed connection), and other connections keep being
//! served.

use std::time::Duration;

use bson::{RawDocumentBuf, rawdoc};
use mongosync_testkit::MemoryCluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn header(len: usize, request_id: i32, op: i32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(len as i32).to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&op.to_le_bytes());
    out
}

fn op_msg(request_id: i32, body: &RawDocumentBuf) -> Vec<u8> {
    let mut out = header(16 + 4 + 1 + body.as_bytes().len(), request_id, 2013);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.push(0);
    out.extend_from_slice(body.as_bytes());
    out
}

fn op_query(request_id: i32, ns: &str, query: &RawDocumentBuf) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&0i32.to_le_bytes());
    payload.extend_from_slice(ns.as_bytes());
    payload.push(0);
    payload.extend_from_slice(&0i32.to_le_bytes());
    payload.extend_from_slice(&(-1i32).to_le_bytes());
    payload.extend_from_slice(query.as_bytes());
    let mut out = header(16 + payload.len(), request_id, 2004);
    out.extend_from_slice(&payload);
    out
}

/// Reads one reply: (opcode, responseTo, body document).
async fn read_reply(stream: &mut TcpStream) -> Option<(i32, i32, RawDocumentBuf)> {
    let mut head = [0u8; 16];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head))
        .await
        .ok()?
        .ok()?;
    let len = i32::from_le_bytes(head[0..4].try_into().unwrap()) as usize;
    let response_to = i32::from_le_bytes(head[8..12].try_into().unwrap());
    let op = i32::from_le_bytes(head[12..16].try_into().unwrap());
    let mut rest = vec![0u8; len - 16];
    stream.read_exact(&mut rest).await.ok()?;
    let doc_start = if op == 2013 { 5 } else { 20 };
    let body = RawDocumentBuf::from_bytes(rest[doc_start..].to_vec()).ok()?;
    Some((op, response_to, body))
}

async fn ping_works(cluster: &MemoryCluster) {
    let mut s = TcpStream::connect(cluster.addr()).await.unwrap();
    s.write_all(&op_msg(1, &rawdoc! {"ping": 1, "$db": "admin"}))
        .await
        .unwrap();
    let (_, _, body) = read_reply(&mut s).await.expect("ping reply");
    assert_eq!(body.get_f64("ok").unwrap(), 1.0);
}

async fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn legacy_op_query_handshake_gets_an_op_reply() {
    let cluster = MemoryCluster::start().await.unwrap();
    let mut s = TcpStream::connect(cluster.addr()).await.unwrap();
    s.write_all(&op_query(
        42,
        "admin.$cmd",
        &rawdoc! {"ismaster": 1, "helloOk": true},
    ))
    .await
    .unwrap();
    let (op, response_to, body) = read_reply(&mut s).await.unwrap();
    assert_eq!(op, 1, "OP_REPLY");
    assert_eq!(response_to, 42);
    assert!(body.get_bool("ismaster").unwrap());
    assert!(body.get_bool("helloOk").unwrap());
    // Anything but the handshake over OP_QUERY is refused with 352, as since 5.1.
    s.write_all(&op_query(43, "admin.$cmd", &rawdoc! {"find": "c"}))
        .await
        .unwrap();
    let (_, _, body) = read_reply(&mut s).await.unwrap();
    assert_eq!(body.get_i32("code").unwrap(), 352);
    assert_eq!(
        body.get_str("codeName").unwrap(),
        "UnsupportedOpQueryCommand"
    );
}

#[tokio::test]
async fn malformed_messages_are_refused_and_the_server_keeps_serving() {
    let cluster = MemoryCluster::start().await.unwrap();

    // A length below the header size: the connection is closed.
    let mut s = TcpStream::connect(cluster.addr()).await.unwrap();
    s.write_all(&header(8, 1, 2013)).await.unwrap();
    assert!(closed(&mut s).await);

    // Over 48 MB: closed, without reading the body.
    let mut s = TcpStream::connect(cluster.addr()).await.unwrap();
    s.write_all(&header(60_000_000, 1, 2013)).await.unwrap();
    assert!(closed(&mut s).await);

    // A removed legacy opcode (OP_INSERT): closed.
    let mut s = TcpStream::connect(cluster.addr()).await.unwrap();
    let mut m = header(16 + 8, 1, 2002);
    m.extend_from_slice(&[0; 8]);
    s.write_all(&m).await.unwrap();
    assert!(closed(&mut s).await);

    // Invalid BSON in the body: an error reply, and the connection stays usable.
    let mut s = TcpStream::connect(cluster.addr()).await.unwrap();
    let bad_doc = [12u8, 0, 0, 0, 0x7f, b'a', 0, 1, 0, 0, 0, 0];
    let mut m = header(16 + 4 + 1 + bad_doc.len(), 5, 2013);
    m.extend_from_slice(&0u32.to_le_bytes());
    m.push(0);
    m.extend_from_slice(&bad_doc);
    s.write_all(&m).await.unwrap();
    let (_, response_to, body) = read_reply(&mut s).await.unwrap();
    assert_eq!(response_to, 5);
    assert_eq!(body.get_f64("ok").unwrap(), 0.0);
    s.write_all(&op_msg(6, &rawdoc! {"ping": 1, "$db": "admin"}))
        .await
        .unwrap();
    let (_, _, body) = read_reply(&mut s).await.unwrap();
    assert_eq!(body.get_f64("ok").unwrap(), 1.0);

    // A truncated message followed by a hang-up.
    let mut s = TcpStream::connect(cluster.addr()).await.unwrap();
    s.write_all(&header(100, 1, 2013)).await.unwrap();
    drop(s);

    // Unknown commands and missing $db get the real errors.
    let mut s = TcpStream::connect(cluster.addr()).await.unwrap();
    s.write_all(&op_msg(7, &rawdoc! {"frobnicate": 1, "$db": "admin"}))
        .await
        .unwrap();
    let (_, _, body) = read_reply(&mut s).await.unwrap();
    assert_eq!(body.get_i32("code").unwrap(), 59);
    s.write_all(&op_msg(8, &rawdoc! {"ping": 1})).await.unwrap();
    let (_, _, body) = read_reply(&mut s).await.unwrap();
    assert_eq!(body.get_i32("code").unwrap(), 40571);

    ping_works(&cluster).await;
}

#[tokio::test]
async fn fire_and_forget_messages_get_no_reply() {
    let cluster = MemoryCluster::start().await.unwrap();
    let mut s = TcpStream::connect(cluster.addr()).await.unwrap();
    let body =
        rawdoc! {"insert": "c", "documents": [{"_id": 1}], "$db": "d", "writeConcern": {"w": 0}};
    let mut m = header(16 + 4 + 1 + body.as_bytes().len(), 1, 2013);
    m.extend_from_slice(&2u32.to_le_bytes()); // moreToCome
    m.push(0);
    m.extend_from_slice(body.as_bytes());
    s.write_all(&m).await.unwrap();
    // The next request's reply is the first thing read back.
    s.write_all(&op_msg(2, &rawdoc! {"count": "c", "$db": "d"}))
        .await
        .unwrap();
    let (_, response_to, body) = read_reply(&mut s).await.unwrap();
    assert_eq!(response_to, 2);
    assert_eq!(body.get_i32("n").unwrap(), 1);
}

#[tokio::test]
async fn clusters_in_one_process_are_independent() {
    let a = MemoryCluster::start().await.unwrap();
    let b = MemoryCluster::start().await.unwrap();
    assert_ne!(a.uri(), b.uri());
    let mut s = TcpStream::connect(a.addr()).await.unwrap();
    s.write_all(&op_msg(
        1,
        &rawdoc! {"insert": "c", "documents": [{"_id": 1}], "$db": "d"},
    ))
    .await
    .unwrap();
    read_reply(&mut s).await.unwrap();
    let mut s = TcpStream::connect(b.addr()).await.unwrap();
    s.write_all(&op_msg(2, &rawdoc! {"count": "c", "$db": "d"}))
        .await
        .unwrap();
    let (_, _, body) = read_reply(&mut s).await.unwrap();
    assert_eq!(body.get_i32("n").unwrap(), 0);
    let addr = a.addr();
    a.shutdown().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "a stopped cluster no longer listens"
    );
    ping_works(&b).await;
}
