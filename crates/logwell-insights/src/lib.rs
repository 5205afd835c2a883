//! The Logs Insights query language: the pest grammar in `grammar/insights.pest` and the typed AST
//! it parses into. Compilation to DataFusion plans lives elsewhere; this crate only says what a
//! query means, or where and why it does not parse.
//!
//! ```
//! use logwell_insights::{parse, Command};
//! let q = parse("fields @timestamp, @message | filter @message like /ERROR/ | limit 20").unwrap();
//! assert_eq!(q.commands.len(), 3);
//! assert!(matches!(q.commands[2], Command::Limit { n: 20, any: false }));
//! ```

mod ast;
mod parser;

pub use ast::*;
pub use parser::{parse, ParseError};
