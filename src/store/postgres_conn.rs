//! A PostgreSQL connection that prepares each SQL text once: the server
//! parses, analyses and plans a statement the first time a connection runs
//! it, and later runs only bind and execute (before, every execution was
//! prepared under a new name and closed, ~32 % of the server's CPU per
//! transfer). The texts are the store's own (constants, and `format!`s over
//! table and column names), so a connection's cache stays small; it is
//! bounded all the same.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};

/// Statements a connection keeps prepared, at most; past it the cache is
/// emptied (and refilled by use).
const PREPARED_MAX: usize = 256;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A connection and the statements it has prepared.
pub struct Conn {
    client: Client,
    prepared: HashMap<String, Statement>,
}

/// Prepares `sql` once per connection.
fn statement(
    client: &mut impl postgres::GenericClient,
    prepared: &mut HashMap<String, Statement>,
    sql: &str,
) -> Result<Statement, postgres::Error> {
    if let Some(s) = prepared.get(sql) {
        return Ok(s.clone());
    }
    let s = client.prepare(sql)?;
    if prepared.len() >= PREPARED_MAX {
        prepared.clear();
    }
    prepared.insert(sql.to_string(), s.clone());
    Ok(s)
}

/// What the store runs SQL through: a connection, or a transaction on one.
/// The same methods as the driver's, with statements prepared once.
pub trait Run {
    fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, postgres::Error>;
    fn query_opt(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>, postgres::Error>;
    fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, postgres::Error>;
    fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, postgres::Error>;
    /// Statements without parameters, sent as one simple query.
    fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error>;
}

macro_rules! run_through {
    ($ty:ty, $client:ident, $prepared:ident) => {
        impl Run for $ty {
            fn query(
                &mut self,
                sql: &str,
                params: Params<'_>,
            ) -> Result<Vec<Row>, postgres::Error> {
                let s = statement(&mut self.$client, &mut self.$prepared, sql)?;
                self.$client.query(&s, params)
            }
            fn query_opt(
                &mut self,
                sql: &str,
                params: Params<'_>,
            ) -> Result<Option<Row>, postgres::Error> {
                let s = statement(&mut self.$client, &mut self.$prepared, sql)?;
                self.$client.query_opt(&s, params)
            }
            fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, postgres::Error> {
                let s = statement(&mut self.$client, &mut self.$prepared, sql)?;
                self.$client.query_one(&s, params)
            }
            fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, postgres::Error> {
                let s = statement(&mut self.$client, &mut self.$prepared, sql)?;
                self.$client.execute(&s, params)
            }
            fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error> {
                self.$client.batch_execute(sql)
            }
        }
    };
}

run_through!(Conn, client, prepared);
run_through!(Tx<'_>, tx, prepared);

impl Conn {
    pub fn new(client: Client) -> Conn {
        Conn {
            client,
            prepared: HashMap::new(),
        }
    }

    /// A transaction on this connection, using its prepared statements.
    pub fn transaction(&mut self) -> Result<Tx<'_>, postgres::Error> {
        Ok(Tx {
            tx: self.client.transaction()?,
            prepared: &mut self.prepared,
        })
    }
}

/// A transaction, preparing through its connection's cache.
pub struct Tx<'a> {
    tx: postgres::Transaction<'a>,
    prepared: &'a mut HashMap<String, Statement>,
}

impl Tx<'_> {
    pub fn commit(self) -> Result<(), postgres::Error> {
        self.tx.commit()
    }
}

/// The pool's connection manager: plain connections with a statement cache.
pub struct Manager {
    config: postgres::Config,
}

impl Manager {
    pub fn new(config: postgres::Config) -> Manager {
        Manager { config }
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        let mut client = self.config.connect(NoTls)?;
        // Every query of the store is a keyed lookup or an ordered range
        // with a LIMIT, which an index scan answers row by row. On the
        // queue table, whose statistics are always stale (it churns by
        // thousands of rows a second), the planner otherwise picks a bitmap
        // scan that reads the whole queue and sorts it for 300 rows: 5 ms
        // instead of a fraction, most of PostgreSQL's time under load.
        client.batch_execute("SET enable_bitmapscan = off")?;
        Ok(Conn::new(client))
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}
