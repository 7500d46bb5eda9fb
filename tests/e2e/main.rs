//! End-to-end tests: the real `control-plane` binary (which embeds the agent node) on
//! 127.0.0.1, real TLS and certificates, driven over HTTP like a browser, an API client
//! or a node would. The same suite runs on SQLite and, with `TEST_DATABASE_URL`, on
//! PostgreSQL.

#![allow(clippy::unwrap_used)]

mod harness;

mod agents;
mod api;
mod billing;
mod channels;
mod cli;
mod cloud;
mod cloud_fakes;
mod db_outage;
mod exports;
mod faults;
mod gateway;
mod https;
mod ingest;
mod input;
mod journey;
mod layers;
mod lifecycle;
mod mail;
mod members;
mod nodeapi;
mod oauth;
mod openapi;
mod operator;
mod ordering;
mod outage;
mod outbound;
mod outbox;
mod proxy;
mod relay;
mod replicas;
mod roles;
mod routes;
mod secrets;
mod security;
mod sessions;
mod stalled;
mod tokens;
mod twilio;
mod upgrades;
