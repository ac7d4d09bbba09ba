//! `outwatch demo`: the whole pipeline against recorded data on loopback.

pub mod server;
