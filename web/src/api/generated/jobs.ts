// Generated from the service's /api-docs/openapi.json by web/scripts/openapi.mjs: do not edit.
// Regenerate with `npm run openapi:update` while the services run (see web/README.md).

export interface paths {
    "/api/jobs/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The job, for its owner or an admin; 404 for anyone else. */
        get: operations["get"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/jobs/{id}/cancel": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Cancels a pending, scheduled or running job. A queued job leaves the queue at once; a
         *     running one is stopped by its worker at the next check (the worker sees the row).
         */
        post: operations["cancel"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/jobs/{id}/retry": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Puts a failed or cancelled job back in the queue with `attempts` 0. */
        post: operations["retry"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/jobs/admin/all": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Every user's jobs (admins only). */
        get: operations["list_all"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/jobs/all": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The caller's jobs. */
        get: operations["list_own"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/jobs/stats": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Counts per status (every status, zeros included) and pending jobs per priority: the
         *     caller's own jobs, or the whole system's for an admin.
         */
        get: operations["stats"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/jobs/submit": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Submits a job. With an `Idempotency-Key` this user already used: 200 and the original job. */
        post: operations["submit"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /** @description The job object as the API returns it. */
        Job: {
            /** Format: int32 */
            attempts: number;
            /** Format: date-time */
            created_at: string;
            data: Record<string, unknown>;
            /** Format: date-time */
            finished_at?: string | null;
            /** Format: uuid */
            id: string;
            last_error?: string | null;
            /** Format: int32 */
            max_attempts: number;
            /** Format: int32 */
            priority: number;
            /** Format: int32 */
            progress: number;
            result?: Record<string, unknown> | null;
            /** Format: date-time */
            run_at?: string | null;
            /** Format: date-time */
            started_at?: string | null;
            status: components["schemas"]["JobStatus"];
            type: components["schemas"]["JobType"];
            /** Format: date-time */
            updated_at: string;
            /** Format: uuid */
            user_id: string;
        };
        /** @description `{"job": {...}}`. */
        JobEnvelope: {
            job: components["schemas"]["Job"];
        };
        /** @description A page of jobs. */
        JobPage: {
            items: components["schemas"]["Job"][];
            next_cursor?: string | null;
        };
        /**
         * @description The lifecycle state of a job.
         *
         *     `pending` (in the queue) → `running` → `completed`; a failed attempt goes to `scheduled`
         *     (waiting for its retry time) and back to `pending`; after `max_attempts` failed attempts,
         *     `failed`. `cancelled` is reachable from `pending`, `scheduled` and `running`.
         * @enum {string}
         */
        JobStatus: "pending" | "scheduled" | "running" | "completed" | "failed" | "cancelled";
        /**
         * @description The built-in job types the worker knows how to run.
         * @enum {string}
         */
        JobType: "noop" | "echo" | "sleep" | "send_email" | "hash";
        /**
         * @description An error response body: `{"type", "title", "status", "detail", "code", "errors"?,
         *     "request_id"?}`.
         */
        Problem: {
            /** @description Stable snake_case code a client can switch on. */
            code: string;
            /** @description What happened and what to do next. */
            detail: string;
            /** @description Field-level messages for `validation_failed`. */
            errors?: Record<string, unknown> | null;
            /**
             * @description The id of the request that got this answer (also in the `X-Request-Id` header): quote
             *     it when reporting a problem, it finds every log line of the request.
             */
            request_id?: string | null;
            /**
             * Format: int32
             * @description The HTTP status code.
             */
            status: number;
            /** @description Short summary of the kind of problem. */
            title: string;
            /** @description A URI naming the kind of problem (`urn:task-vault:problem:<code>`). */
            type: string;
        };
        /**
         * @description The submit body. Numbers are taken as `i64` so that out-of-range values get a 422 naming
         *     the field rather than a type error.
         */
        SubmitJob: {
            /** @description Type-specific data (default `{}`), at most 64 KiB of JSON. */
            data?: Record<string, unknown> | null;
            /**
             * Format: int64
             * @description 1..=25, default 3.
             */
            max_attempts?: number | null;
            /**
             * Format: int64
             * @description −1000..=1000, default 0; higher runs first.
             */
            priority?: number | null;
            /** @description RFC 3339; a future time makes the job `scheduled` until then. */
            run_at?: string | null;
            /** @description A built-in job type. */
            type: string;
        };
    };
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    get: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Job id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description `{"job"}` */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["JobEnvelope"];
                };
            };
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Problem"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Problem"];
                };
            };
        };
    };
    cancel: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Job id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description `{"job"}` now cancelled */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["JobEnvelope"];
                };
            };
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Problem"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Problem"];
                };
            };
            /** @description `already_finished` */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Problem"];
                };
            };
        };
    };
    retry: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Job id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description `{"job"}` now pending */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["JobEnvelope"];
                };
            };
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Problem"];
                };
            };
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Problem"];
                };
            };
            /** @description `not_retryable` */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Problem"];
                };
            };
        };
    };
    list_all: {
        parameters: {
            query?: {
                /** @description `next_cursor` of the previous page. */
                cursor?: string | null;
                /** @description 1..=100 (default 20). */
                limit?: string | null;
                /** @description Only jobs in this status. */
                status?: string | null;
                /** @description Only jobs of this type. */
                type?: string | null;
                /** @description Only this user's jobs (admin route only). */
                user_id?: string | null;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description `{"items": [job], "next_cursor"}` */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["JobPage"];
                };
            };
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Problem"];
                };
            };
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Problem"];
                };
            };
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Problem"];
                };
            };
        };
    };
    list_own: {
        parameters: {
            query?: {
                /** @description `next_cursor` of the previous page. */
                cursor?: string | null;
                /** @description 1..=100 (default 20). */
                limit?: string | null;
                /** @description Only jobs in this status. */
                status?: string | null;
                /** @description Only jobs of this type. */
                type?: string | null;
                /** @description Only this user's jobs (admin route only). */
                user_id?: string | null;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description `{"items": [job], "next_cursor"}` */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["JobPage"];
                };
            };
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Problem"];
                };
            };
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Problem"];
                };
            };
        };
    };
    stats: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description `{"counts": {...}, "queue_depth": {"<priority>": n}}` */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Problem"];
                };
            };
        };
    };
    submit: {
        parameters: {
            query?: never;
            header?: {
                /** @description Makes retried submits create one job */
                "Idempotency-Key"?: string | null;
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["SubmitJob"];
            };
        };
        responses: {
            /** @description the job created earlier with this Idempotency-Key */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["JobEnvelope"];
                };
            };
            /** @description `{"job"}` */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["JobEnvelope"];
                };
            };
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Problem"];
                };
            };
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Problem"];
                };
            };
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Problem"];
                };
            };
            /** @description `rate_limited` (per-user submit rate) or `too_many_unfinished_jobs`, with `Retry-After` */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Problem"];
                };
            };
        };
    };
}
