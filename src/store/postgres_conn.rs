//! A PostgreSQL connection of the pool: tokio-postgres, driven from the
//! store's threads, that prepares each SQL text once and pipelines the
//! writes of a transaction.
//!
//! - **Prepared once**: the server parses, analyses and plans a statement
//!   the first time a connection runs it, and later runs only bind and
//!   execute (before, every execution was prepared under a new name and
//!   closed, ~32 % of the server's CPU per transfer). The texts are the
//!   store's own (constants, and `format!`s over table and column names),
//!   so a connection's cache stays small; it is bounded all the same.
//! - **Pipelined**: a write whose result nobody reads is *deferred*
//!   ([`Run::defer`]) and sent with the next statement that needs an
//!   answer (or at [`Run::send_deferred`]), all in one round trip: a
//!   transfer's account, audit entry, queue items and `RELEASE SAVEPOINT`
//!   cost one round trip instead of four. tokio-postgres pipelines the
//!   requests that are in flight together on one connection; the
//!   synchronous `postgres` crate cannot.
//! - **Driven on the caller's thread**: each connection has a
//!   current-thread runtime that runs only while the caller waits for its
//!   answer (the way the synchronous crate works), so a query costs no
//!   thread hop. Called from the daemon's async tasks, the store leaves the
//!   runtime first (`block_in_place`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use bytes::{BufMut, BytesMut};
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, Connection, NoTls, Row, Socket, Statement};

pub use tokio_postgres::Error;

/// Statements a connection keeps prepared, at most; past it the cache is
/// emptied (and refilled by use).
const PREPARED_MAX: usize = 256;

/// Writes a connection holds back for one round trip, at most; past it they
/// are sent (a worker settling hundreds of items does not buffer them all).
const DEFERRED_MAX: usize = 256;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A deferred statement's own parameters.
pub type Owned = Vec<Box<dyn ToSql + Sync + Send>>;

/// Owned parameters for [`Run::defer`]: `owned![a.id.clone(), n]`.
macro_rules! owned {
    ($($p:expr),* $(,)?) => {
        vec![$(Box::new($p) as Box<dyn tokio_postgres::types::ToSql + Sync + Send>),*]
    };
}
pub(crate) use owned;

/// A value already serialized as JSON, for a `json`, `jsonb` or `text`
/// parameter (a deferred write owns its parameters; this spares cloning
/// the record).
#[derive(Debug)]
pub struct JsonText {
    bytes: Vec<u8>,
    /// Where the JSON text starts in `bytes` (1 after the codec's version
    /// byte).
    text_at: usize,
}

impl JsonText {
    pub fn of<T: serde::Serialize>(value: &T) -> Result<JsonText, serde_json::Error> {
        serde_json::to_vec(value).map(|bytes| JsonText { bytes, text_at: 0 })
    }

    /// A value in the codec's JSON format (version 1), taken as it is:
    /// its text is not copied (a hook-record page is about 150 KB). Any
    /// other format is handed back.
    pub fn of_codec(encoded: Vec<u8>) -> Result<JsonText, Vec<u8>> {
        if encoded.first() == Some(&crate::store::codec::FORMAT_JSON) {
            Ok(JsonText {
                bytes: encoded,
                text_at: 1,
            })
        } else {
            Err(encoded)
        }
    }
}

impl ToSql for JsonText {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB {
            // jsonb's binary format: a version byte, then the text.
            out.put_u8(JSONB_VERSION);
        }
        out.extend_from_slice(&self.bytes[self.text_at..]);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        holds_json(ty)
    }

    to_sql_checked!();
}

/// A `json`, `jsonb` or `text` (JSON text: every value since schema
/// version 6) value read as the codec's version-1 bytes (a version byte,
/// then JSON text). jsonb's binary format is exactly that, so a read
/// copies the bytes instead of building a `serde_json::Value` and writing
/// it out again (a queue worker's window, a claim, a scan).
#[derive(Debug)]
pub struct CodecJson(pub Vec<u8>);

/// jsonb's binary format version this build reads.
const JSONB_VERSION: u8 = 1;
const _: () = assert!(JSONB_VERSION == crate::store::codec::FORMAT_JSON);

/// Whether a column of type `ty` holds JSON text: `json`, `jsonb`, or
/// `text` (every value since schema version 6).
fn holds_json(ty: &Type) -> bool {
    *ty == Type::JSON || *ty == Type::JSONB || *ty == Type::TEXT
}

/// The JSON text of a `json`, `jsonb` or `text` column's value as the
/// server sends it (jsonb's after its version byte).
fn json_text_of<'a>(
    ty: &Type,
    raw: &'a [u8],
) -> Result<&'a [u8], Box<dyn std::error::Error + Sync + Send>> {
    match (*ty == Type::JSONB, raw.split_first()) {
        (true, Some((&JSONB_VERSION, text))) => Ok(text),
        (true, _) => {
            Err("a jsonb value in a binary format version this build does not read".into())
        }
        (false, _) => Ok(raw),
    }
}

impl<'a> FromSql<'a> for CodecJson {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let text = json_text_of(ty, raw)?;
        let mut out = Vec::with_capacity(text.len() + 1);
        out.push(crate::store::codec::FORMAT_JSON);
        out.extend_from_slice(text);
        Ok(CodecJson(out))
    }

    fn accepts(ty: &Type) -> bool {
        holds_json(ty)
    }
}

/// A record read from a JSON text column (schema version 6), or from a
/// `json` or `jsonb` one, decoded.
#[derive(Debug)]
pub struct JsonRecord<T>(pub T);

impl<'a, T: serde::de::DeserializeOwned> FromSql<'a> for JsonRecord<T> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(JsonRecord(serde_json::from_slice(json_text_of(ty, raw)?)?))
    }

    fn accepts(ty: &Type) -> bool {
        holds_json(ty)
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Database(#[from] Error),
    #[error("the connection's runtime did not start: {0}")]
    Runtime(std::io::Error),
}

/// A statement held back until the next round trip.
struct Deferred {
    sql: &'static str,
    params: Owned,
}

/// A connection, the statements it has prepared and the writes it holds
/// back.
pub struct Conn {
    runtime: tokio::runtime::Runtime,
    /// `None` once it ended (closed or failed): every request now fails,
    /// and the pool drops it.
    connection: Option<Pin<Box<Connection<Socket, NoTlsStream>>>>,
    client: Client,
    prepared: HashMap<String, Statement>,
    deferred: Vec<Deferred>,
    /// Deferred writes sent early (too many held back) failed: the next
    /// statement reports it.
    failed: Option<Error>,
    /// A request failed in a way that ends the session (the server's FATAL,
    /// or no answer from it): the pool drops the connection. The driver
    /// itself notices only when it next writes to the socket.
    broken: bool,
}

/// Whether a failure ended the database session: the server's FATAL, or
/// none of its words at all (the socket failed or closed).
fn ends_session(e: &Error) -> bool {
    match e.as_db_error() {
        Some(db) => matches!(db.severity(), "FATAL" | "PANIC"),
        None => true,
    }
}

/// `wait!(conn, |client| future)`: runs the future the client makes to its
/// end, driving the connection meanwhile.
macro_rules! wait {
    ($conn:expr, |$c:ident| $fut:expr) => {{
        let conn: &mut Conn = &mut *$conn;
        let $c = &conn.client;
        drive(&conn.runtime, &mut conn.connection, $fut)
    }};
}

/// Runs `fut` to its end on the connection's runtime, driving the
/// connection (its socket) meanwhile. When the connection ends (the server
/// closed it, or it failed) it is dropped, which fails every request still
/// waiting on it.
fn drive<F: Future>(
    runtime: &tokio::runtime::Runtime,
    connection: &mut Option<Pin<Box<Connection<Socket, NoTlsStream>>>>,
    fut: F,
) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    runtime.block_on(std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        if let Some(c) = connection.as_mut() {
            if let Poll::Ready(result) = c.as_mut().poll(cx) {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "a database connection ended");
                }
                *connection = None;
                return fut.as_mut().poll(cx);
            }
        }
        Poll::Pending
    }))
}

impl Conn {
    /// Connects (on a runtime of the connection's own).
    pub fn connect(config: &tokio_postgres::Config) -> Result<Conn, ConnectError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ConnectError::Runtime)?;
        let (client, connection) = runtime.block_on(config.connect(NoTls))?;
        Ok(Conn {
            runtime,
            connection: Some(Box::pin(connection)),
            client,
            prepared: HashMap::new(),
            deferred: Vec::new(),
            failed: None,
            broken: false,
        })
    }

    /// Prepares `sql` once per connection.
    fn statement(&mut self, sql: &str) -> Result<Statement, Error> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = wait!(self, |c| c.prepare(sql))?;
        if self.prepared.len() >= PREPARED_MAX {
            self.prepared.clear();
        }
        self.prepared.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    /// Whether the connection has ended: what the server sent meanwhile
    /// (an error, the end of the stream) is read first, without waiting.
    pub fn is_closed(&mut self) -> bool {
        if let Some(c) = self.connection.as_mut() {
            let ended = self.runtime.block_on(std::future::poll_fn(|cx| {
                Poll::Ready(matches!(c.as_mut().poll(cx), Poll::Ready(_)))
            }));
            if ended {
                self.connection = None;
            }
        }
        self.broken || self.connection.is_none() || self.client.is_closed()
    }

    /// Notes whether a request's failure ended the session.
    fn noted<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &result {
            self.broken |= ends_session(e);
        }
        result
    }

    /// A transaction on this connection; it rolls back unless committed.
    /// Its `BEGIN` goes with its first statement.
    pub fn transaction(&mut self) -> Tx<'_> {
        self.defer("BEGIN", Vec::new());
        Tx {
            conn: self,
            done: false,
        }
    }

    /// Commits the open transaction, in one round trip with the deferred
    /// writes; if that fails, rolls back (a failed write turned the COMMIT
    /// into a rollback already, but a failed COMMIT may leave it open).
    pub fn commit(&mut self) -> Result<(), Error> {
        self.defer("COMMIT", Vec::new());
        let result = self.send_deferred();
        if result.is_err() {
            self.rollback();
        }
        result
    }

    /// Forgets the deferred writes and rolls the open transaction back, so
    /// the connection goes back to the pool outside any transaction.
    pub fn rollback(&mut self) {
        self.discard_deferred();
        if let Err(e) = self.batch_execute("ROLLBACK") {
            tracing::warn!(error = %e, "rolling back a transaction failed");
        }
    }
}

/// What the store runs SQL through: a connection, or a transaction on one.
/// The same methods as the driver's, with statements prepared once; the
/// deferred writes go first, in the same round trip.
pub trait Run {
    fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error>;
    fn query_opt(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>, Error> {
        let mut rows = self.query(sql, params)?;
        Ok(if rows.is_empty() {
            None
        } else {
            Some(rows.swap_remove(0))
        })
    }
    fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, Error>;
    fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, Error>;
    /// Statements without parameters, sent as one simple query.
    fn batch_execute(&mut self, sql: &str) -> Result<(), Error>;
    /// A write whose result is not needed now: sent with the next statement
    /// that waits for an answer. A failure shows there (the transaction is
    /// then aborted, so that statement fails too).
    fn defer(&mut self, sql: &'static str, params: Owned);
    /// Sends the deferred writes; the first failure among them.
    fn send_deferred(&mut self) -> Result<(), Error>;
    /// Forgets the deferred writes (the transaction is being rolled back).
    fn discard_deferred(&mut self);
}

impl Conn {
    /// Sends the deferred statements and then `last` (if any) in one round
    /// trip; `last`'s rows, or the first failure.
    fn pipeline(&mut self, last: Option<(&str, Params<'_>)>) -> Result<Vec<Row>, Error> {
        let deferred = std::mem::take(&mut self.deferred);
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        // The statements this round trip runs; those not yet prepared are
        // prepared first, together.
        let mut statements: HashMap<&str, Statement> = HashMap::new();
        let mut missing: Vec<&str> = Vec::new();
        for sql in deferred
            .iter()
            .map(|d| d.sql)
            .chain(last.as_ref().map(|(sql, _)| *sql))
        {
            match self.prepared.get(sql) {
                Some(s) => {
                    statements.insert(sql, s.clone());
                }
                None if !missing.contains(&sql) => missing.push(sql),
                None => {}
            }
        }
        if !missing.is_empty() {
            let prepared = wait!(self, |c| {
                futures_util::future::join_all(missing.iter().map(|sql| c.prepare(sql)))
            });
            if self.prepared.len() + missing.len() > PREPARED_MAX {
                self.prepared.clear();
            }
            for (sql, s) in missing.iter().zip(prepared) {
                let s = s?;
                self.prepared.insert((*sql).to_string(), s.clone());
                statements.insert(sql, s);
            }
        }
        // Every text is in `statements` now (found or prepared above).
        let writes: Vec<(&Statement, Vec<&(dyn ToSql + Sync)>)> = deferred
            .iter()
            .map(|d| {
                let params = d
                    .params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                (&statements[d.sql], params)
            })
            .collect();
        let last = last.map(|(sql, params)| (&statements[sql], params));
        let client = &self.client;
        let (written, read) = drive(
            &self.runtime,
            &mut self.connection,
            futures_util::future::join(
                futures_util::future::join_all(
                    writes.iter().map(|(s, params)| client.execute(*s, params)),
                ),
                async {
                    match last {
                        Some((s, params)) => client.query(s, params).await.map(Some),
                        None => Ok(None),
                    }
                },
            ),
        );
        for w in written {
            w?;
        }
        Ok(read?.unwrap_or_default())
    }

    /// Sends what is deferred before a statement that waits for its answer.
    fn deferred_first(&mut self) -> Result<(), Error> {
        if self.deferred.is_empty() && self.failed.is_none() {
            return Ok(());
        }
        self.pipeline(None).map(|_| ())
    }
}

impl Run for Conn {
    fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
        let result = if self.deferred.is_empty() && self.failed.is_none() {
            self.statement(sql)
                .and_then(|s| wait!(self, |c| c.query(&s, params)))
        } else {
            self.pipeline(Some((sql, params)))
        };
        self.noted(result)
    }

    fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, Error> {
        let result = self
            .deferred_first()
            .and_then(|()| self.statement(sql))
            .and_then(|s| wait!(self, |c| c.query_one(&s, params)));
        self.noted(result)
    }

    fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, Error> {
        let result = self
            .deferred_first()
            .and_then(|()| self.statement(sql))
            .and_then(|s| wait!(self, |c| c.execute(&s, params)));
        self.noted(result)
    }

    fn batch_execute(&mut self, sql: &str) -> Result<(), Error> {
        let result = self
            .deferred_first()
            .and_then(|()| wait!(self, |c| c.batch_execute(sql)));
        self.noted(result)
    }

    fn defer(&mut self, sql: &'static str, params: Owned) {
        self.deferred.push(Deferred { sql, params });
        if self.deferred.len() >= DEFERRED_MAX {
            // Sent now; a failure is kept for the next statement (the
            // transaction is aborted, so it could not succeed anyway).
            if let Err(e) = self.pipeline(None) {
                self.broken |= ends_session(&e);
                self.failed = Some(e);
            }
        }
    }

    fn send_deferred(&mut self) -> Result<(), Error> {
        let result = self.deferred_first();
        self.noted(result)
    }

    fn discard_deferred(&mut self) {
        self.deferred.clear();
        self.failed = None;
    }
}

/// A transaction: rolled back when dropped uncommitted.
pub struct Tx<'a> {
    conn: &'a mut Conn,
    done: bool,
}

impl Tx<'_> {
    /// Commits, in one round trip with the deferred writes.
    pub fn commit(mut self) -> Result<(), Error> {
        self.done = true;
        self.conn.commit()
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.conn.rollback();
        }
    }
}

impl Run for Tx<'_> {
    fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
        self.conn.query(sql, params)
    }
    fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, Error> {
        self.conn.query_one(sql, params)
    }
    fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, Error> {
        self.conn.execute(sql, params)
    }
    fn batch_execute(&mut self, sql: &str) -> Result<(), Error> {
        self.conn.batch_execute(sql)
    }
    fn defer(&mut self, sql: &'static str, params: Owned) {
        self.conn.defer(sql, params)
    }
    fn send_deferred(&mut self) -> Result<(), Error> {
        self.conn.send_deferred()
    }
    fn discard_deferred(&mut self) {
        self.conn.discard_deferred()
    }
}

/// The pool's connection manager: connections with a statement cache.
pub struct Manager {
    config: tokio_postgres::Config,
}

impl Manager {
    pub fn new(config: tokio_postgres::Config) -> Manager {
        Manager { config }
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = ConnectError;

    fn connect(&self) -> Result<Conn, ConnectError> {
        let mut conn = Conn::connect(&self.config)?;
        // Every query of the store is a keyed lookup or an ordered range
        // with a LIMIT, which an index scan answers row by row. On the
        // queue table, whose statistics are always stale (it churns by
        // thousands of rows a second), the planner otherwise picks a bitmap
        // scan that reads the whole queue and sorts it for 300 rows: 5 ms
        // instead of a fraction, most of PostgreSQL's time under load.
        conn.batch_execute("SET enable_bitmapscan = off")?;
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), ConnectError> {
        Ok(wait!(conn, |c| c.simple_query("")).map(|_| ())?)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::fresh_postgres_database;

    fn connect(url: &str) -> Conn {
        Conn::connect(&url.parse().expect("a test URL")).expect("connecting")
    }

    /// A connection to a new database holding table `t` (`None` without a
    /// test server), and the database's URL.
    fn with_table(rows: &str) -> Option<(Conn, String)> {
        let url = fresh_postgres_database()?;
        let mut conn = connect(&url);
        conn.batch_execute(&format!(
            "CREATE TABLE t (id bigint PRIMARY KEY); INSERT INTO t SELECT unnest('{{{rows}}}'::bigint[])"
        ))
        .expect("a table");
        Some((conn, url))
    }

    fn count(conn: &mut Conn) -> i64 {
        conn.query_one("SELECT count(*) FROM t", &[])
            .expect("counting")
            .get(0)
    }

    /// A deferred write is not sent until a statement waits for an answer,
    /// and then goes first: the waiting statement sees it.
    #[test]
    fn a_deferred_write_goes_with_the_next_statement_that_waits_and_before_it() {
        let Some((mut conn, url)) = with_table("") else {
            return;
        };
        let mut other = connect(&url);
        conn.defer("INSERT INTO t (id) VALUES ($1)", owned![1_i64]);
        conn.defer("INSERT INTO t (id) VALUES ($1)", owned![2_i64]);
        assert_eq!(count(&mut other), 0, "nothing is sent before a read");
        let rows = conn
            .query("SELECT id FROM t ORDER BY id", &[])
            .expect("reading");
        let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(ids, [1, 2], "the deferred writes ran first, in order");
        assert_eq!(count(&mut other), 2);
    }

    /// A deferred write that fails fails the commit sent with it; nothing
    /// of the transaction stays, and the connection is fit for the next
    /// caller (not left inside an aborted transaction).
    #[test]
    fn a_failed_deferred_write_fails_its_commit_and_leaves_the_connection_clean() {
        let Some((mut conn, _)) = with_table("1") else {
            return;
        };
        let mut tx = conn.transaction();
        tx.defer("INSERT INTO t (id) VALUES ($1)", owned![5_i64]);
        tx.defer("INSERT INTO t (id) VALUES ($1)", owned![1_i64]);
        let failed = tx.commit().expect_err("a duplicate key");
        assert!(
            failed
                .as_db_error()
                .is_some_and(|e| e.code().code() == "23505"),
            "the write's own error: {failed}"
        );
        assert_eq!(count(&mut conn), 1, "the other write rolled back with it");
        let mut tx = conn.transaction();
        tx.defer("INSERT INTO t (id) VALUES ($1)", owned![6_i64]);
        tx.commit().expect("the connection works on");
        assert_eq!(count(&mut conn), 2);
    }

    /// A connection the server ends fails its next request at once (it
    /// does not wait forever for an answer) and shows itself broken, so
    /// the pool drops it.
    #[test]
    fn a_connection_the_server_ended_fails_its_next_request_and_reads_as_closed() {
        let Some(url) = fresh_postgres_database() else {
            return;
        };
        let mut conn = connect(&url);
        let mut other = connect(&url);
        let pid: i32 = conn
            .query_one("SELECT pg_backend_pid()", &[])
            .expect("its pid")
            .get(0);
        other
            .query_one("SELECT pg_terminate_backend($1)", &[&pid])
            .expect("ending it");
        assert!(conn.query("SELECT 1", &[]).is_err());
        assert!(conn.is_closed());
    }
}
