//! The commands besides `serve`, each a function of its arguments and an output.

pub mod retention;
pub mod validate;
