//! Telling the owners of our addresses (issue #23): contacts, routing each finding to its
//! contact, and the notification mails of `outwatch notify`.

pub mod contacts;
pub mod route;
