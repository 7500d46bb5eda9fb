//! Engine: answering a customer — the agent runtime and the LLM providers. Imports
//! `domain` and `platform`; never `web` or `uplink`.

pub mod agent;
pub mod booking;
pub mod booking_tools;
pub mod followup_gate;
pub mod llm;

#[cfg(test)]
mod answers_tests;
#[cfg(test)]
mod booking_tests;
#[cfg(test)]
mod tool_calls_tests;
