//! Every route of both listeners, in one table each: method, path, handler and the
//! access it needs. The table registers the routes (no route exists outside it), the
//! access guard (`crate::http::guard`) checks each request against it before any handler
//! runs, and the route-coverage and role tests (`tests/e2e/routes.rs`, `roles.rs`) read
//! it to call every route as every kind of caller.
//!
//! Order matters where two patterns could match one path (`/agents/new` before
//! `/agents/{agent}`): actix tries routes in the order they are registered.

pub use crate::http::access::{Access, Method, Route};
use crate::members::Role;
use crate::{
    accounts, agents, billing, gateway, members, mydata, oauth, operator, secrets, workspaces,
};
use actix_web::web;

use super::{openapi, site};

macro_rules! table {
    ($(#[$doc:meta])* $table:ident, $configure:ident {
        $($method:ident $path:literal => $handler:path, $access:expr;)*
    }) => {
        $(#[$doc])*
        pub const $table: &[Route] = &[
            $(Route {
                method: Method::$method,
                path: $path,
                access: $access,
                handler: stringify!($handler),
            },)*
        ];

        /// Registers every route of the table, in its order.
        pub fn $configure(cfg: &mut web::ServiceConfig) {
            $(cfg.route($path, Method::$method.route().to($handler));)*
        }
    };
}

use Access::*;
use Role::{Admin, Member as AnyMember, Owner};

table! {
    /// The UI listener: pages, the JSON API, sign-in, Stripe's webhook.
    UI, configure_ui {
        // The site.
        Get "/" => site::index, Public;
        Get "/healthz" => site::healthz, Public;
        Get "/static/htmx.min.js" => site::htmx, Public;
        Get "/static/outpost.css" => site::css, Public;
        Get "/static/favicon.svg" => site::favicon, Public;

        // Sign-in and the account.
        Get "/signin" => accounts::web::signin_page, Public;
        Post "/signin" => accounts::web::signin_submit, Public;
        Get "/auth/verify" => accounts::web::verify_page, Public;
        Post "/auth/verify" => accounts::web::verify_submit, Public;
        Post "/signout" => accounts::web::signout, Account;
        Get "/account/tokens" => accounts::web::tokens_page, Account;
        Post "/account/tokens" => accounts::web::tokens_create, Account;
        Post "/account/tokens/{token}/revoke" => accounts::web::tokens_revoke, Account;
        Get "/account/sessions" => accounts::web::sessions_page, Account;
        Post "/account/sessions/end-others" => accounts::web::sessions_end_others, Account;
        Post "/account/sessions/{session}/end" => accounts::web::session_end, Account;
        Get "/api/v1/tokens" => accounts::web::api_tokens, Account;
        Delete "/api/v1/tokens/{token}" => accounts::web::api_revoke, Account;
        Get "/auth/oauth/{provider}" => oauth::web::start, Public;
        Get "/auth/oauth/{provider}/callback" => oauth::web::callback_get, Public;
        Post "/auth/oauth/{provider}/callback" => oauth::web::callback_post, Public;
        Get "/account/email" => accounts::email_change::web::page, Account;
        Post "/account/email" => accounts::email_change::web::submit, Account;
        Get "/account/email/confirm" => accounts::email_change::web::confirm_page, Public;
        Post "/account/email/confirm" => accounts::email_change::web::confirm_submit, Public;
        Get "/account/identities" => oauth::web::page, Account;
        Post "/account/identities/unlink" => oauth::web::unlink_submit, Account;
        Get "/account/data" => mydata::web::page, Account;
        Get "/account/data.json" => mydata::web::download, Account;
        Post "/account/close" => mydata::web::close, Account;

        // Workspaces.
        Get "/workspaces" => workspaces::web::list_page, Account;
        Post "/workspaces" => workspaces::web::create_page, Account;
        Get "/workspaces/{id}" => workspaces::web::detail_page, Member(AnyMember);
        Get "/workspaces/{id}/node-status" => workspaces::web::status_partial, Member(AnyMember);
        Post "/workspaces/{id}/console" => workspaces::web::console_page, Member(AnyMember);
        Post "/workspaces/{id}/delete" => workspaces::web::delete_page, Member(Owner);
        Post "/workspaces/{id}/cancel" => workspaces::web::cancel_page, Member(Owner);
        Post "/workspaces/{id}/reactivate" => workspaces::web::reactivate_page, Member(Owner);
        Post "/workspaces/{id}/rename" => workspaces::web::rename_page, Member(Owner);
        Get "/workspaces/{id}/receipt" => workspaces::web::receipt_download, Member(AnyMember);
        // The JSON API (each handler is also a line of `app::openapi::ApiDoc`).
        Get "/api/v1/openapi.json" => openapi::document, Public;
        Get "/api/v1/workspaces" => workspaces::web::api_list, Account;
        Post "/api/v1/workspaces" => workspaces::web::api_create, Account;
        Get "/api/v1/regions" => workspaces::web::api_regions, Account;
        Get "/api/v1/workspaces/{id}" => workspaces::web::api_get, Member(AnyMember);
        Delete "/api/v1/workspaces/{id}" => workspaces::web::api_delete, Member(Owner);
        Patch "/api/v1/workspaces/{id}" => workspaces::web::api_rename, Member(Owner);
        Post "/api/v1/workspaces/{id}/reactivate" => workspaces::web::api_reactivate, Member(Owner);

        // Billing (the routes that need Stripe answer 404 while billing is off).
        Get "/workspaces/{id}/billing" => billing::web::billing_page, Member(Owner);
        Post "/workspaces/{id}/billing/checkout" => billing::web::checkout_page, Member(Owner);
        Get "/workspaces/{id}/billing/return" => billing::web::return_page, Member(Owner);
        Post "/workspaces/{id}/billing/portal" => billing::web::portal_page, Member(Owner);
        Get "/api/v1/workspaces/{id}/billing" => billing::web::api_billing, Member(Owner);
        Post "/api/v1/workspaces/{id}/checkout" => billing::web::api_checkout, Member(Owner);
        Post "/stripe/webhook" => billing::web::receive, Public;

        // Members, invitations, the workspace's audit log.
        Get "/workspaces/{id}/members" => members::web::members_page, Member(AnyMember);
        Post "/workspaces/{id}/members/invite" => members::web::invite_submit, Member(Owner);
        Post "/workspaces/{id}/invitations/{invitation}/revoke" => members::web::revoke_submit, Member(Owner);
        Post "/workspaces/{id}/members/{user}/role" => members::web::role_submit, Member(Owner);
        Post "/workspaces/{id}/members/{user}/remove" => members::web::remove_submit, Member(Owner);
        Post "/workspaces/{id}/members/{user}/transfer" => members::web::transfer_submit, Member(Owner);
        Get "/workspaces/{id}/audit" => members::web::audit_page, Member(Owner);
        Get "/invitations/accept" => members::web::accept_page, Public;
        Post "/invitations/accept" => members::web::accept_submit, Public;
        Get "/api/v1/workspaces/{id}/members" => members::web::api_members, Member(AnyMember);
        Post "/api/v1/workspaces/{id}/invitations" => members::web::api_invite, Member(Owner);

        // Agents.
        Get "/workspaces/{id}/agents/new" => agents::web::new_page, Member(Admin);
        Post "/workspaces/{id}/agents" => agents::web::create_page, Member(Admin);
        Get "/workspaces/{id}/agents/{agent}" => agents::web::show_page, Member(AnyMember);
        Post "/workspaces/{id}/agents/{agent}" => agents::web::update_page, Member(Admin);
        Post "/workspaces/{id}/agents/{agent}/delete" => agents::web::delete_page, Member(Admin);
        Get "/api/v1/workspaces/{id}/agents" => agents::web::api_list, Member(AnyMember);
        Post "/api/v1/workspaces/{id}/agents" => agents::web::api_create, Member(Admin);
        Get "/api/v1/workspaces/{id}/agents/{agent}" => agents::web::api_get, Member(AnyMember);
        Put "/api/v1/workspaces/{id}/agents/{agent}" => agents::web::api_update, Member(Admin);
        Delete "/api/v1/workspaces/{id}/agents/{agent}" => agents::web::api_delete, Member(Admin);

        // Secrets (validated here, sealed to the node).
        Get "/api/v1/workspaces/{id}/secrets" => secrets::web::api_list, Member(Admin);
        Post "/api/v1/workspaces/{id}/secrets" => secrets::web::api_add, Member(Admin);
        Delete "/api/v1/workspaces/{id}/secrets/{kind}" => secrets::web::api_remove, Member(Admin);
        Get "/workspaces/{id}/secrets" => secrets::web::page, Member(Admin);
        Post "/workspaces/{id}/secrets" => secrets::web::submit, Member(Admin);
        Post "/workspaces/{id}/secrets/{kind}/remove" => secrets::web::remove_page, Member(Admin);

        // The operator console.
        Get "/operator" => operator::web::list_page, Operator;
        Get "/operator/workspaces/{id}" => operator::web::detail_page, Operator;
        Post "/operator/workspaces/{id}/suspend" => operator::web::suspend_action, Operator;
        Post "/operator/workspaces/{id}/resume" => operator::web::resume_action, Operator;
        Post "/operator/workspaces/{id}/retry" => operator::web::retry_action, Operator;
        Post "/operator/workspaces/{id}/deprovision" => operator::web::deprovision_action, Operator;
        Post "/operator/upgrades/start" => operator::web::upgrade_start_action, Operator;
        Post "/operator/upgrades/halt" => operator::web::upgrade_halt_action, Operator;
        Post "/operator/upgrades/resume" => operator::web::upgrade_resume_action, Operator;
    }
}

table! {
    /// The gateway listener (mTLS): what nodes call.
    GATEWAY, configure_gateway {
        // The bootstrap token is the credential: no certificate exists yet.
        Post "/v1/enroll" => gateway::web::enroll, Public;
        Post "/v1/node/report" => gateway::web::report, Node;
        Get "/v1/node/commands" => gateway::web::poll_commands, Node;
        Post "/v1/node/commands/{id}/ack" => gateway::web::ack_command, Node;
        Post "/v1/node/renew" => gateway::web::renew, Node;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_route_is_listed_twice() {
        for table in [UI, GATEWAY] {
            for (i, a) in table.iter().enumerate() {
                assert!(
                    !table[i + 1..]
                        .iter()
                        .any(|b| a.path == b.path && a.method == b.method),
                    "{} {} twice",
                    a.method.as_str(),
                    a.path
                );
            }
        }
    }

    #[test]
    fn membership_routes_name_their_workspace_and_node_routes_stay_on_the_gateway() {
        for r in UI {
            if matches!(r.access, Access::Member(_)) {
                assert!(r.path.contains("/workspaces/{id}"), "{}", r.path);
            }
            assert_ne!(r.access, Access::Node, "{}", r.path);
        }
        for r in GATEWAY {
            assert!(
                matches!(r.access, Access::Node | Access::Public),
                "{}",
                r.path
            );
        }
    }
}
