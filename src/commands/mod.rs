//! The commands that fit one file each, one module per command; [`crate::cli`] dispatches to
//! them. Bigger commands live with their use case: `escalator bench` ([`crate::bench`]),
//! `review` and `labels add-from-reviews` ([`crate::review::cli`]), `audit`
//! ([`crate::audit::cli`]) and `promote` ([`crate::promote`]). Every command maps its failures to
//! the exit codes of [`crate::exit`].

pub mod classify;
pub mod eval;
pub mod healthcheck;
pub mod labels_check;
pub mod prompt_render;
pub mod serve;
