//! The commands besides `serve`, each a function of its arguments and an output.

pub mod get;
pub mod record;
pub mod retention;
pub mod validate;
pub mod wait;
