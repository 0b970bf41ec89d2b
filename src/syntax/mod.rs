//! KQL text -> syntax tree -> KQL text. `print` is the `Display` of the tree, so
//! `parse(print(q)) == q`.

pub mod ast;
pub mod lexer;
pub mod parser;
pub mod print;

pub use parser::{parse_expression, parse_query, parse_query_measured};
