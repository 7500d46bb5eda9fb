//! Diesel schema, shared by SQLite and PostgreSQL (the migrations use only types both
//! backends have). Keep in step with `migrations/*/`.

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        is_operator -> Bool,
        created_at -> BigInt,
    }
}

diesel::table! {
    magic_links (token_hash) {
        token_hash -> Text,
        email -> Text,
        ip -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    sessions (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        csrf_token -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        id -> Text,
        last_seen_at -> Nullable<BigInt>,
        device -> Text,
        place -> Text,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        token_hash -> Text,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
        expires_at -> BigInt,
        read_only -> Bool,
    }
}

diesel::table! {
    workspaces (id) {
        id -> Text,
        slug -> Text,
        name -> Text,
        plan -> Text,
        created_at -> BigInt,
        deleted_at -> Nullable<BigInt>,
        config_revision -> BigInt,
        deprovision_after -> Nullable<BigInt>,
        region -> Nullable<Text>,
    }
}

diesel::table! {
    key_fingerprints (name) {
        name -> Text,
        fingerprint -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    workspace_secrets (workspace_id, kind) {
        workspace_id -> Text,
        kind -> Text,
        fingerprint -> Text,
        last4 -> Text,
        validated_at -> Nullable<BigInt>,
        delivered_at -> Nullable<BigInt>,
        status -> Text,
        error_code -> Nullable<Text>,
        command_id -> Nullable<Text>,
        updated_at -> BigInt,
    }
}

diesel::table! {
    agents (id) {
        id -> Text,
        workspace_id -> Text,
        name -> Text,
        greeting -> Text,
        instructions -> Text,
        language -> Text,
        fallback_message -> Text,
        hours_days -> Text,
        open_minute -> Integer,
        close_minute -> Integer,
        utc_offset_minutes -> Integer,
        provider -> Text,
        model -> Text,
        base_url -> Text,
        allowed_origins -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        channels -> Text,
        time_zone -> Text,
    }
}

diesel::table! {
    memberships (workspace_id, user_id) {
        workspace_id -> Text,
        user_id -> Text,
        role -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    nodes (id) {
        id -> Text,
        workspace_id -> Text,
        state -> Text,
        failed_step -> Nullable<Text>,
        error_code -> Nullable<Text>,
        provider -> Text,
        region -> Text,
        provider_ref -> Nullable<Text>,
        public_url -> Nullable<Text>,
        version -> Nullable<Text>,
        age_recipient -> Nullable<Text>,
        enrolled_at -> Nullable<BigInt>,
        last_report_at -> Nullable<BigInt>,
        last_seq -> Nullable<BigInt>,
        uptime_s -> Nullable<BigInt>,
        disk_used_bytes -> Nullable<BigInt>,
        queue_depth -> Nullable<BigInt>,
        checks_json -> Nullable<Text>,
        state_changed_at -> BigInt,
        created_at -> BigInt,
        destroyed_at -> Nullable<BigInt>,
        receipt_body -> Nullable<Text>,
        receipt_signature -> Nullable<Text>,
        waiting_conversations -> Nullable<BigInt>,
        waiting_notified_at -> Nullable<BigInt>,
        last_epoch -> Nullable<Text>,
        ipv4 -> Nullable<Text>,
        ipv6 -> Nullable<Text>,
        dns_name -> Nullable<Text>,
    }
}

diesel::table! {
    node_certs (serial) {
        serial -> Text,
        node_id -> Text,
        cert_pem -> Text,
        not_after -> BigInt,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    bootstrap_tokens (token_hash) {
        token_hash -> Text,
        node_id -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    node_reports (node_id, epoch, seq) {
        node_id -> Text,
        seq -> BigInt,
        produced_at -> BigInt,
        received_at -> BigInt,
        epoch -> Text,
    }
}

diesel::table! {
    ai_counts (node_id, day, model) {
        node_id -> Text,
        day -> BigInt,
        model -> Text,
        requests -> BigInt,
        input_tokens -> BigInt,
        output_tokens -> BigInt,
    }
}

diesel::table! {
    call_counts (node_id, hour) {
        node_id -> Text,
        hour -> BigInt,
        calls -> BigInt,
        minutes -> BigInt,
    }
}

diesel::table! {
    booking_counts (node_id, hour) {
        node_id -> Text,
        hour -> BigInt,
        booked -> BigInt,
        rescheduled -> BigInt,
        cancelled -> BigInt,
    }
}

diesel::table! {
    usage_counts (node_id, channel, hour) {
        node_id -> Text,
        channel -> Text,
        hour -> BigInt,
        inbound -> BigInt,
        outbound -> BigInt,
        conversations -> BigInt,
    }
}

diesel::table! {
    node_events (id) {
        id -> Text,
        node_id -> Text,
        at_ms -> BigInt,
        kind -> Text,
        detail -> Text,
    }
}

diesel::table! {
    commands (id) {
        id -> Text,
        node_id -> Text,
        kind -> Text,
        payload -> Nullable<Text>,
        created_at_ms -> BigInt,
        expires_at -> Nullable<BigInt>,
        delivered_at -> Nullable<BigInt>,
        acked_at -> Nullable<BigInt>,
        ack_ok -> Nullable<Bool>,
        error_code -> Nullable<Text>,
    }
}

diesel::table! {
    jobs (id) {
        id -> Text,
        kind -> Text,
        node_id -> Text,
        state -> Text,
        attempts -> Integer,
        max_attempts -> Integer,
        next_run_at -> BigInt,
        locked_until -> Nullable<BigInt>,
        locked_by -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    audit_events (seq) {
        seq -> BigInt,
        at -> BigInt,
        actor -> Nullable<Text>,
        action -> Text,
        object_type -> Text,
        object_id -> Text,
        workspace_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        detail -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    invitations (id) {
        id -> Text,
        workspace_id -> Text,
        email -> Text,
        role -> Text,
        token_hash -> Text,
        invited_by -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        accepted_at -> Nullable<BigInt>,
        accepted_by -> Nullable<Text>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    workspace_suspensions (id) {
        id -> Text,
        workspace_id -> Text,
        code -> Text,
        reason -> Text,
        actor -> Text,
        created_at -> BigInt,
        lifted_at -> Nullable<BigInt>,
        lifted_by -> Nullable<Text>,
    }
}

diesel::table! {
    node_exports (node_id, export_id) {
        node_id -> Text,
        export_id -> Text,
        workspace_id -> Text,
        scope -> Text,
        state -> Text,
        size_bytes -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    retention_sweeps (node_id, at) {
        node_id -> Text,
        at -> BigInt,
        workspace_id -> Text,
        messages_deleted -> BigInt,
        contacts_erased -> BigInt,
        exports_deleted -> BigInt,
    }
}

diesel::table! {
    audit_anchor (id) {
        id -> Integer,
        seq -> BigInt,
        hash -> Text,
        pruned_at -> BigInt,
    }
}

diesel::table! {
    retention_runs (id) {
        id -> Integer,
        last_run_at -> BigInt,
    }
}

diesel::table! {
    oauth_identities (id) {
        id -> Text,
        provider -> Text,
        subject -> Text,
        user_id -> Text,
        email -> Text,
        created_at -> BigInt,
        last_used_at -> BigInt,
    }
}

diesel::table! {
    oauth_states (state_hash) {
        state_hash -> Text,
        provider -> Text,
        binding_hash -> Text,
        nonce -> Text,
        pkce_verifier -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    billing_accounts (workspace_id) {
        workspace_id -> Text,
        plan -> Text,
        stripe_customer_id -> Nullable<Text>,
        stripe_subscription_id -> Nullable<Text>,
        subscription_status -> Nullable<Text>,
        status_event_created -> Nullable<BigInt>,
        current_period_end -> Nullable<BigInt>,
        activated_at -> Nullable<BigInt>,
        cancel_requested_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    stripe_events (id) {
        id -> Text,
        #[sql_name = "type"]
        type_ -> Text,
        created -> BigInt,
        received_at -> BigInt,
    }
}

diesel::table! {
    invoices (id) {
        id -> Text,
        workspace_id -> Nullable<Text>,
        stripe_customer_id -> Text,
        number -> Nullable<Text>,
        amount_due -> BigInt,
        amount_paid -> BigInt,
        currency -> Text,
        status -> Text,
        hosted_invoice_url -> Nullable<Text>,
        first_failed_at -> Nullable<BigInt>,
        created -> BigInt,
        updated_from_event_created -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    known_devices (user_id, token_hash) {
        user_id -> Text,
        token_hash -> Text,
        first_seen_at -> BigInt,
        last_seen_at -> BigInt,
    }
}

diesel::table! {
    email_changes (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        new_email -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    mail_outbox (id) {
        id -> Text,
        recipient -> Text,
        subject -> Text,
        body -> Text,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        locked_until -> Nullable<BigInt>,
        locked_by -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        done_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    upgrades (id) {
        id -> Text,
        version -> Text,
        url -> Text,
        sha256 -> Text,
        signature -> Text,
        batch_size -> Integer,
        state -> Text,
        halted_reason -> Nullable<Text>,
        created_by -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    upgrade_nodes (upgrade_id, node_id) {
        upgrade_id -> Text,
        node_id -> Text,
        wave -> Integer,
        state -> Text,
        command_id -> Nullable<Text>,
        sent_at -> Nullable<BigInt>,
        done_at -> Nullable<BigInt>,
    }
}

diesel::joinable!(memberships -> workspaces (workspace_id));
diesel::joinable!(workspace_suspensions -> workspaces (workspace_id));
diesel::joinable!(invitations -> workspaces (workspace_id));
diesel::allow_tables_to_appear_in_same_query!(invitations, workspaces);
diesel::allow_tables_to_appear_in_same_query!(workspace_suspensions, workspaces);
diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(nodes -> workspaces (workspace_id));
diesel::joinable!(agents -> workspaces (workspace_id));
diesel::allow_tables_to_appear_in_same_query!(agents, workspaces);
diesel::allow_tables_to_appear_in_same_query!(users, workspaces, memberships, nodes);
diesel::joinable!(node_certs -> nodes (node_id));
diesel::allow_tables_to_appear_in_same_query!(node_certs, nodes);
diesel::allow_tables_to_appear_in_same_query!(sessions, users);
diesel::joinable!(oauth_identities -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(oauth_identities, users);
diesel::joinable!(billing_accounts -> workspaces (workspace_id));
diesel::allow_tables_to_appear_in_same_query!(billing_accounts, workspaces, invoices);
diesel::joinable!(known_devices -> users (user_id));
diesel::joinable!(email_changes -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(known_devices, email_changes, users);
