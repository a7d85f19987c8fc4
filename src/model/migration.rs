//! A schema migration file (SPEC §7) as a value, and which of them a hop applies. Finding them on
//! disk and applying them is [`crate::steps::migrations`]'s.
//!
//! A fleet's contract migrations (SPEC §15), under `migrations/<version>/post/`, are never a
//! hop's: `migrations finalize` applies them once every node runs their release. Their ledger
//! version is `<version>/post`, so that they never share a key with the release's own.

use std::path::PathBuf;

use serde::Serialize;

use crate::model::version::Version;

/// One migration file.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: Version,
    pub sequence: u32,
    /// The file name, e.g. `001-create-users.sql`.
    pub name: String,
    pub path: PathBuf,
    pub kind: Kind,
    pub sha256: String,
    /// Applied by the hop (expand), or by `migrations finalize` (contract, `post/`).
    pub stage: Stage,
}

/// When a migration is applied (SPEC §15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// `migrations/<version>/`: by the hop to `<version>`, keeping the schema compatible with
    /// the release before.
    Expand,
    /// `migrations/<version>/post/`: by `migrations finalize`, once no node runs an older release.
    Contract,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Sql,
    /// An executable data migration; gets `UPGRADE_DATABASE_URL` and the hook environment.
    Executable,
}

impl Migration {
    /// `2.0.0/001-create-users.sql` (`2.0.0/post/001-drop-name.sql` for a contract migration):
    /// how messages, the plan and the ledger name a migration.
    pub fn label(&self) -> String {
        format!("{}/{}", self.ledger_version(), self.name)
    }

    /// Its version as the ledger records it: `2.0.0`, or `2.0.0/post` for a contract migration.
    pub fn ledger_version(&self) -> String {
        match self.stage {
            Stage::Expand => self.version.to_string(),
            Stage::Contract => format!("{}/post", self.version),
        }
    }

    pub fn key(&self) -> (String, u32) {
        (self.ledger_version(), self.sequence)
    }
}

/// The migrations a hop from `from` to `to` applies: version in (from, to], contract ones aside.
pub fn in_hop<'a>(
    all: &'a [Migration],
    from: Option<&Version>,
    to: &Version,
) -> Vec<&'a Migration> {
    all.iter()
        .filter(|m| m.stage == Stage::Expand)
        .filter(|m| from.is_none_or(|f| m.version > *f) && m.version <= *to)
        .collect()
}

/// The contract migrations `migrations finalize` may apply when `installed` is the release of
/// every node: those of releases up to it, in order.
pub fn contract_up_to<'a>(all: &'a [Migration], installed: &Version) -> Vec<&'a Migration> {
    all.iter()
        .filter(|m| m.stage == Stage::Contract && m.version <= *installed)
        .collect()
}

/// The SQL dialect of the database migrations run on: how their text is read (quotes,
/// comments, and what may hold a `;` that does not end a statement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    /// MariaDB and MySQL.
    Mysql,
}

/// A statement that begins, ends or cuts the transaction a migration is applied in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionControl {
    /// The line of its first word, from 1.
    pub line: usize,
    /// Its leading words, upper-case: `COMMIT`, `START TRANSACTION`.
    pub statement: String,
}

/// What reading the text of an SQL migration found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqlScan {
    /// Statements, not counting empty ones (comments, blanks, a lone `;`).
    pub statements: usize,
    /// The first statement that controls the transaction.
    pub transaction_control: Option<TransactionControl>,
}

/// Reads the statements of `text` the way `dialect`'s server splits them.
///
/// NB: a reader, not a parser: it knows quotes, comments, dollar quotes (PostgreSQL) and the
/// `BEGIN … END` blocks of `CREATE TRIGGER`/`FUNCTION`/`PROCEDURE` and MariaDB's
/// `BEGIN NOT ATOMIC`, whose `;` do not end a statement, and looks at each statement's first
/// words. What it cannot follow (an unterminated quote) ends the reading: it may miss a
/// statement, never invent one; applying keeps the ledger true when one slips through.
pub fn scan_sql(text: &str, dialect: Dialect) -> SqlScan {
    let mut scan = SqlScan::default();
    let mut statement = Statement::default();
    let mut tokens = Tokens {
        text: text.as_bytes(),
        at: 0,
        line: 1,
        dialect,
    };
    while let Some((token, line)) = tokens.next() {
        if statement.take(token, line, dialect) {
            statement.finish(&mut scan);
            statement = Statement::default();
        }
    }
    statement.finish(&mut scan);
    scan
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A keyword or identifier, upper-case.
    Word(String),
    Semicolon,
    Open,
    Close,
    /// Anything else: a literal, a quoted name, an operator.
    Other,
}

/// One statement as it is read.
#[derive(Default)]
struct Statement {
    tokens: usize,
    /// Its first word and that word's line; its second token, when a word.
    first: Option<(String, usize)>,
    second: Option<String>,
    /// May hold `BEGIN … END` blocks.
    compound: bool,
    blocks: usize,
    parens: usize,
    /// The word before was `END` in a block.
    after_end: bool,
}

impl Statement {
    /// Takes the next token; true when it ends the statement.
    fn take(&mut self, token: Token, line: usize, dialect: Dialect) -> bool {
        if std::mem::take(&mut self.after_end)
            && !matches!(&token, Token::Word(w) if matches!(w.as_str(), "IF" | "LOOP" | "WHILE" | "REPEAT" | "FOR"))
        {
            // `END` closes a `BEGIN` or `CASE`; `END IF` and the like close what is not counted
            self.blocks = self.blocks.saturating_sub(1);
        }
        match &token {
            Token::Semicolon if self.parens == 0 && self.blocks == 0 => return self.tokens > 0,
            Token::Semicolon | Token::Other => {}
            Token::Open => self.parens += 1,
            Token::Close => self.parens = self.parens.saturating_sub(1),
            Token::Word(word) => match self.tokens {
                0 => {
                    self.compound = word == "CREATE";
                    self.first = Some((word.clone(), line));
                }
                1 if dialect == Dialect::Mysql
                    && word == "NOT"
                    && self.first.as_ref().is_some_and(|(w, _)| w == "BEGIN") =>
                {
                    self.compound = true;
                    self.blocks = 1;
                }
                _ if self.compound => match word.as_str() {
                    "BEGIN" | "CASE" => self.blocks += 1,
                    "END" => self.after_end = true,
                    _ => {}
                },
                _ => {}
            },
        }
        if self.tokens == 1
            && let Token::Word(word) = token
        {
            self.second = Some(word);
        }
        self.tokens += 1;
        false
    }

    fn finish(&self, scan: &mut SqlScan) {
        if self.tokens == 0 {
            return;
        }
        scan.statements += 1;
        if scan.transaction_control.is_some() || self.compound {
            return;
        }
        let Some((first, line)) = &self.first else {
            return;
        };
        let statement = match (first.as_str(), self.second.as_deref()) {
            ("BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE", _) => {
                first.clone()
            }
            ("START" | "PREPARE", Some("TRANSACTION")) => format!("{first} TRANSACTION"),
            _ => return,
        };
        scan.transaction_control = Some(TransactionControl {
            line: *line,
            statement,
        });
    }
}

/// The tokens of SQL text, each with its line; comments and blanks skipped.
struct Tokens<'a> {
    text: &'a [u8],
    at: usize,
    line: usize,
    dialect: Dialect,
}

impl Tokens<'_> {
    fn peek(&self, ahead: usize) -> u8 {
        self.text.get(self.at + ahead).copied().unwrap_or(0)
    }

    /// Moves to `to`, counting lines.
    fn skip_to(&mut self, to: usize) {
        let to = to.min(self.text.len());
        self.line += self.text[self.at..to]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.at = to;
    }

    /// Skips past the end of the line.
    fn skip_line(&mut self) {
        let end = self.text[self.at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.text.len(), |n| self.at + n + 1);
        self.skip_to(end);
    }

    /// Skips a `/* … */` comment (nested on PostgreSQL); false when it does not end.
    fn skip_comment(&mut self) -> bool {
        let mut depth = 0;
        let mut i = self.at;
        while i + 1 < self.text.len() {
            match (self.text[i], self.text[i + 1]) {
                (b'/', b'*') if depth == 0 || self.dialect == Dialect::Postgres => {
                    depth += 1;
                    i += 2;
                }
                (b'*', b'/') => {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        self.skip_to(i);
                        return true;
                    }
                }
                _ => i += 1,
            }
        }
        false
    }

    /// Skips a quoted literal or name that starts at the current byte; `backslash` escapes.
    fn skip_quoted(&mut self, close: u8, backslash: bool) -> bool {
        let mut i = self.at + 1;
        while i < self.text.len() {
            match self.text[i] {
                b'\\' if backslash => i += 2,
                b if b == close && self.text.get(i + 1) == Some(&close) => i += 2,
                b if b == close => {
                    self.skip_to(i + 1);
                    return true;
                }
                _ => i += 1,
            }
        }
        false
    }

    /// Skips a PostgreSQL dollar-quoted string (`$tag$ … $tag$`) if one starts here.
    fn skip_dollar_quoted(&mut self) -> Option<bool> {
        let tag_end = self.text[self.at + 1..]
            .iter()
            .position(|&b| !is_word_byte(b) || b == b'$')
            .map(|n| self.at + 1 + n)?;
        if self.text[tag_end] != b'$' || self.peek(1).is_ascii_digit() {
            return None;
        }
        let tag = &self.text[self.at..=tag_end];
        let body = tag_end + 1;
        Some(
            match self.text[body..].windows(tag.len()).position(|w| w == tag) {
                Some(n) => {
                    self.skip_to(body + n + tag.len());
                    true
                }
                None => false,
            },
        )
    }

    /// The next token and its line; `None` at the end or where the text cannot be followed.
    fn next(&mut self) -> Option<(Token, usize)> {
        loop {
            let c = *self.text.get(self.at)?;
            let line = self.line;
            let ended = match c {
                b'\n' | b' ' | b'\t' | b'\r' | b'\x0c' => {
                    self.skip_to(self.at + 1);
                    continue;
                }
                b'-' if self.peek(1) == b'-'
                    && (self.dialect != Dialect::Mysql
                        || matches!(self.peek(2), 0 | b' ' | b'\t' | b'\n' | b'\r')) =>
                {
                    self.skip_line();
                    continue;
                }
                b'#' if self.dialect == Dialect::Mysql => {
                    self.skip_line();
                    continue;
                }
                // NB: MariaDB runs what `/*! … */` and `/*M! … */` hold: read on inside them.
                b'/' if self.peek(1) == b'*'
                    && self.dialect == Dialect::Mysql
                    && (self.peek(2) == b'!' || (self.peek(2) == b'M' && self.peek(3) == b'!')) =>
                {
                    self.skip_to(self.at + if self.peek(2) == b'!' { 3 } else { 4 });
                    return Some((Token::Other, line));
                }
                b'/' if self.peek(1) == b'*' => match self.skip_comment() {
                    true => continue,
                    false => return None,
                },
                b'\'' => self.skip_quoted(b'\'', self.dialect == Dialect::Mysql),
                b'"' => self.skip_quoted(b'"', self.dialect == Dialect::Mysql),
                b'`' if self.dialect != Dialect::Postgres => self.skip_quoted(b'`', false),
                b'[' if self.dialect == Dialect::Sqlite => self.skip_quoted(b']', false),
                b'$' if self.dialect == Dialect::Postgres => match self.skip_dollar_quoted() {
                    Some(ended) => ended,
                    None => {
                        self.skip_to(self.at + 1);
                        true
                    }
                },
                b';' => {
                    self.skip_to(self.at + 1);
                    return Some((Token::Semicolon, line));
                }
                b'(' | b')' => {
                    self.skip_to(self.at + 1);
                    let token = if c == b'(' { Token::Open } else { Token::Close };
                    return Some((token, line));
                }
                c if is_word_byte(c) && !c.is_ascii_digit() => {
                    let end = self.text[self.at..]
                        .iter()
                        .position(|&b| !is_word_byte(b))
                        .map_or(self.text.len(), |n| self.at + n);
                    let word = String::from_utf8_lossy(&self.text[self.at..end]).to_uppercase();
                    self.skip_to(end);
                    // NB: PostgreSQL's E'…' strings take backslash escapes.
                    if self.dialect == Dialect::Postgres && word == "E" && self.peek(0) == b'\'' {
                        if !self.skip_quoted(b'\'', true) {
                            return None;
                        }
                        return Some((Token::Other, line));
                    }
                    return Some((Token::Word(word), line));
                }
                c if is_word_byte(c) => {
                    let end = self.text[self.at..]
                        .iter()
                        .position(|&b| !is_word_byte(b) && b != b'.')
                        .map_or(self.text.len(), |n| self.at + n);
                    self.skip_to(end);
                    true
                }
                _ => {
                    self.skip_to(self.at + 1);
                    true
                }
            };
            return ended.then_some((Token::Other, line));
        }
    }
}

/// A byte of a keyword, a name or a number (non-ASCII letters included).
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::{Dialect, Kind, Migration, SqlScan, Stage, TransactionControl, scan_sql};
    use crate::model::version::VersionScheme;

    fn migration(version: &str, sequence: u32, stage: Stage) -> Migration {
        Migration {
            version: VersionScheme::default().parse(version).unwrap(),
            sequence,
            name: format!("{sequence:03}-m.sql"),
            path: Default::default(),
            kind: Kind::Sql,
            sha256: String::new(),
            stage,
        }
    }

    #[test]
    fn contract_migrations_are_no_hops_and_have_keys_of_their_own() {
        let v = |s: &str| VersionScheme::default().parse(s).unwrap();
        let all = [
            migration("1.0.0", 1, Stage::Expand),
            migration("1.0.0", 1, Stage::Contract),
            migration("2.0.0", 1, Stage::Expand),
            migration("2.0.0", 1, Stage::Contract),
        ];
        assert_eq!(all[1].label(), "1.0.0/post/001-m.sql");
        assert_ne!(all[0].key(), all[1].key());
        let labels = |ms: Vec<&Migration>| ms.iter().map(|m| m.label()).collect::<Vec<_>>();
        assert_eq!(
            labels(super::in_hop(&all, None, &v("2.0.0"))),
            ["1.0.0/001-m.sql", "2.0.0/001-m.sql"]
        );
        assert_eq!(
            labels(super::contract_up_to(&all, &v("1.5.0"))),
            ["1.0.0/post/001-m.sql"]
        );
    }

    fn control(text: &str, dialect: Dialect) -> Option<(usize, String)> {
        scan_sql(text, dialect)
            .transaction_control
            .map(|TransactionControl { line, statement }| (line, statement))
    }

    #[test]
    fn transaction_control_is_found_with_its_line() {
        let all = [Dialect::Sqlite, Dialect::Postgres, Dialect::Mysql];
        for d in all {
            assert_eq!(control("COMMIT", d), Some((1, "COMMIT".into())));
            assert_eq!(
                control("CREATE TABLE a (b INT);\n\n  begin work;\nx;", d),
                Some((3, "BEGIN".into()))
            );
            assert_eq!(
                control("-- a\n/* b */ start transaction read write;", d),
                Some((2, "START TRANSACTION".into()))
            );
            assert_eq!(
                control("SELECT 1; Rollback To Savepoint s;", d),
                Some((1, "ROLLBACK".into()))
            );
            assert_eq!(control("SELECT 1; END;", d), Some((1, "END".into())));
            assert_eq!(
                control("SAVEPOINT a; RELEASE a;", d),
                Some((1, "SAVEPOINT".into()))
            );
        }
        assert_eq!(
            control("PREPARE TRANSACTION 'x'", Dialect::Postgres),
            Some((1, "PREPARE TRANSACTION".into()))
        );
        // after a block, the next statement is read again
        assert_eq!(
            control(
                "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END;\nCOMMIT;",
                Dialect::Sqlite
            ),
            Some((2, "COMMIT".into()))
        );
    }

    #[test]
    fn blocks_quotes_and_comments_are_not_transaction_control() {
        let none = |text: &str, d: Dialect| assert_eq!(control(text, d), None, "{text}");
        for d in [Dialect::Sqlite, Dialect::Postgres, Dialect::Mysql] {
            none("INSERT INTO t VALUES ('a; COMMIT');", d);
            none("INSERT INTO t VALUES ('it''s'); -- COMMIT\n", d);
            none("/* ROLLBACK; */ SELECT 1;", d);
            none("SELECT begin_at, end_at FROM t; PREPARE p AS SELECT 1", d);
            none("SELECT CASE WHEN 1 THEN 2 END;", d);
        }
        none(
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE b SET n = CASE WHEN 1 THEN 2 END;\n  SELECT 1;\nEND;",
            Dialect::Sqlite,
        );
        none("SELECT [a;COMMIT] FROM t;", Dialect::Sqlite);
        none(
            "DO $$ BEGIN COMMIT; END $$; CREATE FUNCTION f() RETURNS int AS $f$ BEGIN RETURN 1; END $f$ LANGUAGE plpgsql;",
            Dialect::Postgres,
        );
        none(
            "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;",
            Dialect::Postgres,
        );
        none("SELECT E'\\'; COMMIT;'; SELECT 'a\\';", Dialect::Postgres);
        none("/* a /* b */ ; COMMIT; */ SELECT $1", Dialect::Postgres);
        none(
            "CREATE PROCEDURE p() BEGIN IF 1 THEN SELECT 1; END IF; l: LOOP LEAVE l; END LOOP; END;",
            Dialect::Mysql,
        );
        none("BEGIN NOT ATOMIC SELECT 1; END;", Dialect::Mysql);
        none(
            "SELECT 'it\\'s; COMMIT'; # don't\nSELECT \"COMMIT;\";",
            Dialect::Mysql,
        );
        // an unterminated quote ends the reading
        none("SELECT 'a; COMMIT;", Dialect::Sqlite);
    }

    #[test]
    fn empty_text_has_no_statements() {
        for d in [Dialect::Sqlite, Dialect::Postgres, Dialect::Mysql] {
            for text in ["", " \n\t", "-- a\n/* b */\n", ";\n;", "/* unterminated"] {
                assert_eq!(scan_sql(text, d), SqlScan::default(), "{text:?}");
            }
            assert_eq!(scan_sql("SELECT 1;; SELECT 2", d).statements, 2);
        }
        assert_eq!(scan_sql("# a\n", Dialect::Mysql).statements, 0);
        assert_eq!(
            scan_sql("/*!40101 SET NAMES utf8 */;", Dialect::Mysql).statements,
            1
        );
    }
}
