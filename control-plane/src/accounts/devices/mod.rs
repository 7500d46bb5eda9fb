//! Recognising the browsers an account signs in from, so that a sign-in from one never
//! seen before is announced to the account's address ("new sign-in" email, sent by the
//! sign-in handlers). A browser carries a random device token in a long-lived cookie
//! ([`model::DEVICE_COOKIE`]); the table `known_devices` keeps its SHA-256 per account with
//! first and last seen times, nothing about the browser itself.

pub mod model;
pub mod service;
pub mod store;
pub mod web;
