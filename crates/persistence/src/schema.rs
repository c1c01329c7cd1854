//! Diesel table definitions, kept in step with `migrations/` by hand.

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        password_hash -> Text,
        role -> Text,
        email_verified -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Bytea,
        session_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        spent_at -> Nullable<Timestamptz>,
        successor_sealed -> Nullable<Bytea>,
    }
}

diesel::table! {
    email_tokens (token_hash) {
        token_hash -> Bytea,
        user_id -> Uuid,
        purpose -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    otp_codes (user_id) {
        user_id -> Uuid,
        code_hash -> Bytea,
        failed_attempts -> Int4,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        account_failures -> Int4,
        failures_since -> Timestamptz,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(email_tokens -> users (user_id));
diesel::joinable!(otp_codes -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    sessions,
    refresh_tokens,
    email_tokens,
    otp_codes
);

diesel::table! {
    jobs (id) {
        id -> Uuid,
        user_id -> Uuid,
        #[sql_name = "type"]
        job_type -> Text,
        data -> Jsonb,
        priority -> Int2,
        status -> Text,
        attempts -> Int4,
        max_attempts -> Int4,
        progress -> Int2,
        result -> Nullable<Jsonb>,
        last_error -> Nullable<Text>,
        run_at -> Nullable<Timestamptz>,
        idempotency_key -> Nullable<Text>,
        fence -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        request_id -> Nullable<Text>,
        depends_on -> Array<Uuid>,
        schedule_id -> Nullable<Uuid>,
        schedule_due_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    job_dependencies (parent_id, job_id) {
        parent_id -> Uuid,
        job_id -> Uuid,
    }
}

diesel::joinable!(jobs -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(jobs, users);

diesel::table! {
    job_logs (job_id, id) {
        id -> Int8,
        job_id -> Uuid,
        at -> Timestamptz,
        attempt -> Int4,
        level -> Text,
        message -> Text,
    }
}

diesel::joinable!(job_logs -> jobs (job_id));
diesel::allow_tables_to_appear_in_same_query!(job_logs, jobs);

diesel::table! {
    queue_pause (id) {
        id -> Int2,
        paused_types -> Array<Text>,
        version -> Int8,
        updated_at -> Timestamptz,
        updated_by -> Nullable<Uuid>,
    }
}

diesel::table! {
    schedules (id) {
        id -> Uuid,
        user_id -> Uuid,
        name -> Text,
        cron -> Text,
        timezone -> Text,
        #[sql_name = "type"]
        job_type -> Text,
        data -> Jsonb,
        priority -> Int2,
        max_attempts -> Int4,
        paused -> Bool,
        next_run_at -> Nullable<Timestamptz>,
        last_run_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(schedules -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(schedules, users);

diesel::table! {
    unfinished_jobs (user_id, job_id) {
        user_id -> Uuid,
        job_id -> Uuid,
        queued_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(unfinished_jobs, jobs);
