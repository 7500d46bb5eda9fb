//! Console pages: the agents the CP configured on this node, each with its web-chat
//! embed snippet and a preview page where staff can chat with it as a visitor would.

use super::access::Nav;
use super::{render, ConsoleError, ConsoleSession, ConsoleState};
use crate::platform::store::CONFIG_KEY;
use actix_web::{web, HttpResponse};
use askama::Template;
use outpost_protocol::{AgentConfig, WorkspaceConfig};

#[derive(Template)]
#[template(path = "agents.html")]
struct AgentsPage {
    /// The links this session may follow (`base.html`).
    nav: Nav,
    agents: Vec<AgentConfig>,
    public_url: String,
    /// Per agent (same order): websites the widget refused in the last 24 hours.
    refused: Vec<Vec<RefusedRow>>,
}

/// A website the widget refused, in words.
struct RefusedRow {
    origin: String,
    times: String,
    last: String,
}

impl AgentsPage {
    fn snippet(&self, agent: &AgentConfig) -> String {
        format!(
            "<script src=\"{}/widget.js\" data-outpost-agent=\"{}\" async></script>",
            self.public_url, agent.id
        )
    }
}

#[derive(Template)]
#[template(path = "agent_preview.html")]
struct PreviewPage {
    /// The links this session may follow (`base.html`).
    nav: Nav,
    agent: AgentConfig,
}

async fn config(state: &web::Data<ConsoleState>) -> Result<WorkspaceConfig, ConsoleError> {
    let st = state.clone();
    let raw = web::block(move || st.store.meta(CONFIG_KEY)).await??;
    Ok(raw
        .and_then(|r| serde_json::from_str(&r).ok())
        .unwrap_or_default())
}

async fn list(
    state: web::Data<ConsoleState>,
    widget: Option<web::Data<crate::web::widget::WidgetState>>,
    session: ConsoleSession,
) -> Result<HttpResponse, ConsoleError> {
    let agents = config(&state).await?.agents;
    let refused = agents
        .iter()
        .map(|a| {
            widget
                .as_ref()
                .map(|w| w.refused.for_agent(&a.id))
                .unwrap_or_default()
                .into_iter()
                .map(|r| RefusedRow {
                    times: if r.count == 1 {
                        "once".to_owned()
                    } else {
                        format!("{} times", r.count)
                    },
                    last: r.last.duration_since(std::time::UNIX_EPOCH).map_or_else(
                        |_| "unknown".to_owned(),
                        |d| super::human_time(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
                    ),
                    origin: r.origin,
                })
                .collect()
        })
        .collect();
    render(&AgentsPage {
        nav: Nav::for_session(&session),
        agents,
        public_url: state.origin.clone(),
        refused,
    })
}

async fn preview(
    state: web::Data<ConsoleState>,
    session: ConsoleSession,
    path: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let agent = config(&state)
        .await?
        .agents
        .into_iter()
        .find(|a| a.id == *path)
        .ok_or(ConsoleError::NotFound)?;
    render(&PreviewPage {
        nav: Nav::for_session(&session),
        agent,
    })
}

/// Routes of this section.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/agents", web::get().to(list))
        .route("/agents/{id}/preview", web::get().to(preview));
}
