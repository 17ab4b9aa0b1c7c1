-- Every query the store runs, by name, written once for SQLite and PostgreSQL.
--
-- `:name` is a parameter; `{in:name}` / `{not_in:name}` test membership in a list parameter;
-- `{for_update}` and `{skip_locked}` lock rows on PostgreSQL and are empty on SQLite, whose
-- writers are serialized by BEGIN IMMEDIATE. `{db_now}` is the database's clock where workers on
-- several machines compare leases (PostgreSQL), the caller's `:now` where they share one (SQLite). `{where}` and the like are filled by core.py from
-- fixed fragments. sql.py turns a query into each dialect's text once.

-- name: instance_columns
seq, workflow, id, params, status, output, error, created_at, started_at, ended_at, wake_at, owner, gen,
paused_at, trigger, terminating

-- name: step_columns
pos, kind, name, n, status, output, error, attempts, config, started_at, ended_at, wake_at, event_type

-- reads ----------------------------------------------------------------------------------------

-- name: instances_by_id
SELECT {instance_columns} FROM wf_instances WHERE id = :id LIMIT 2

-- name: instance_by_workflow_id
SELECT {instance_columns} FROM wf_instances WHERE workflow = :workflow AND id = :id

-- name: instance_by_seq
SELECT {instance_columns} FROM wf_instances WHERE seq = :seq

-- name: list_instances
SELECT {instance_columns} FROM wf_instances {where} ORDER BY created_at DESC, seq DESC LIMIT :limit OFFSET :offset

-- A page by key (created_at, seq), newest first (or oldest first after a key): page 4,000 costs
-- what page 1 does.
-- name: page_instances
SELECT {instance_columns} FROM wf_instances {where} ORDER BY created_at {order}, seq {order} LIMIT :limit

-- name: instances_in
SELECT {instance_columns} FROM wf_instances WHERE workflow {in:workflows} AND status {in:statuses}
ORDER BY created_at, seq

-- name: count_matching
SELECT count(*) FROM wf_instances {where}

-- name: count_by_status
SELECT status, count(*) FROM wf_instances WHERE workflow = :workflow GROUP BY status

-- name: steps_of
SELECT {step_columns} FROM wf_steps WHERE instance = :seq ORDER BY pos

-- name: steps_of_kind
SELECT {step_columns} FROM wf_steps WHERE instance = :seq AND kind = :kind ORDER BY pos

-- name: attempts_of
SELECT pos, attempt, started_at, ended_at, error, traceback FROM wf_attempts WHERE instance = :seq ORDER BY pos, attempt

-- name: next_event
SELECT seq, type, payload, created_at FROM wf_events
WHERE instance = :seq AND consumed_by IS NULL {type_filter} ORDER BY seq LIMIT 1

-- name: events_of
SELECT seq, type, payload, created_at, consumed_by FROM wf_events WHERE instance = :seq ORDER BY seq

-- name: next_wake
SELECT min(wake_at) FROM wf_instances
WHERE owner IS NULL AND wake_at IS NOT NULL AND {no_index}workflow {in:workflows}
  AND NOT (status = 'queued' AND workflow {in:capped}) {extra}

-- Instances (of `seqs`) with something to look at: an event not yet taken, or an instance they
-- wait for (step.wait_for_instance) that has ended or is gone. What a lost note would have said.
-- name: with_pending_events
SELECT DISTINCT instance FROM wf_events WHERE consumed_by IS NULL AND instance {in:seqs}
UNION
SELECT w.waiter FROM wf_waits w LEFT JOIN wf_instances t ON t.seq = w.target
WHERE w.waiter {in:seqs} AND (t.seq IS NULL OR t.status IN ('complete', 'errored', 'terminated'))

-- The steps of several instances at once (a runner's claimed batch), by instance then position.
-- name: steps_of_many
SELECT instance, {step_columns} FROM wf_steps WHERE instance {in:seqs} ORDER BY instance, pos

-- losses_since_progress for several instances at once; an instance with none has no row.
-- name: losses_of_many
SELECT h.instance, count(*) FROM wf_history h
WHERE h.instance {in:seqs} AND h.type = 'runner_lost' AND h.seq > COALESCE(
  (SELECT max(p.seq) FROM wf_history p WHERE p.instance = h.instance AND p.type {in:progress}), 0)
GROUP BY h.instance

-- name: losses_since_progress
SELECT count(*) FROM wf_history
WHERE instance = :seq AND type = 'runner_lost' AND seq > COALESCE(
  (SELECT max(seq) FROM wf_history WHERE instance = :seq AND type {in:progress}), 0)

-- name: owners
SELECT DISTINCT owner FROM wf_instances WHERE owner IS NOT NULL

-- name: history
SELECT h.seq, h.instance, i.workflow, i.id, h.at, h.type, h.step, h.n, h.data
FROM wf_history h LEFT JOIN wf_instances i ON i.seq = h.instance
WHERE h.seq > :after {where} ORDER BY h.seq LIMIT :limit

-- name: last_history_seq
SELECT COALESCE(max(seq), 0) FROM wf_history

-- name: append_history
INSERT INTO wf_history (instance, at, type, step, n, data) VALUES (:seq, :at, :type, :step, :n, :data)

-- client writes --------------------------------------------------------------------------------

-- name: insert_instance
INSERT INTO wf_instances (workflow, id, params, status, created_at, updated_at, wake_at, trigger,
  success_retention, error_retention)
VALUES (:workflow, :id, :params, 'queued', :now, :now, :now, :trigger, :success_retention, :error_retention)
ON CONFLICT (workflow, id) DO NOTHING RETURNING seq

-- name: lock_instance
SELECT status, paused_at FROM wf_instances WHERE seq = :seq {for_update}

-- name: insert_event
INSERT INTO wf_events (instance, type, payload, created_at) VALUES (:seq, :type, :payload, :now) RETURNING seq

-- An event is stored only for an instance that has not ended (the row is locked first).
-- name: insert_event_if_open
INSERT INTO wf_events (instance, type, payload, created_at)
SELECT seq, :type, :payload, :now FROM wf_instances
WHERE seq = :seq AND status NOT IN ('complete', 'errored', 'terminated')
RETURNING seq

-- Sending an event to an instance named by its id, in one transaction that also finds it (on
-- PostgreSQL one round trip, where finding it first and then sending would be two). {match} names
-- it (by id, or by workflow and id); {open} holds it to one open instance: an id two workflows
-- share, or an instance that has ended, gets nothing, and the client says why the slower way.
-- name: lock_by_id
SELECT seq FROM wf_instances WHERE {match} {for_update}

-- name: insert_event_by_id
INSERT INTO wf_events (instance, type, payload, created_at)
SELECT seq, :type, :payload, :now FROM wf_instances WHERE {open}
RETURNING instance

-- name: wake_by_id
UPDATE wf_instances SET wake_at = :now WHERE {open} AND status = 'waiting'

-- name: log_by_id
INSERT INTO wf_history (instance, at, type, data)
SELECT seq, :now, 'event_received', :data FROM wf_instances WHERE {open}

-- name: event_note_by_id
SELECT 'e:' || seq FROM wf_instances WHERE {open}

-- name: log_if_open
INSERT INTO wf_history (instance, at, type, data)
SELECT seq, :at, :type, :data FROM wf_instances
WHERE seq = :seq AND status NOT IN ('complete', 'errored', 'terminated')

-- name: wake_if_waiting
UPDATE wf_instances SET wake_at = :now WHERE seq = :seq AND status = 'waiting'

-- name: set_waiting_for_pause
UPDATE wf_instances SET status = 'waitingForPause', updated_at = :now WHERE seq = :seq

-- name: set_paused
UPDATE wf_instances SET status = 'paused', paused_at = :now, owner = NULL, lease_until = NULL, wake_at = NULL,
  gen = gen + 1, updated_at = :now
WHERE seq = :seq

-- name: cancel_pause
UPDATE wf_instances SET status = 'running', updated_at = :now WHERE seq = :seq

-- name: shift_timers
UPDATE wf_steps SET wake_at = wake_at + :shift
WHERE instance = :seq AND wake_at IS NOT NULL AND status IN ('waiting', 'retrying')

-- name: set_resumed
UPDATE wf_instances SET status = 'queued', paused_at = NULL, wake_at = :now, updated_at = :now WHERE seq = :seq

-- name: set_terminated
UPDATE wf_instances SET status = 'terminated', ended_at = :now, updated_at = :now, owner = NULL, lease_until = NULL,
  wake_at = NULL, paused_at = NULL, gen = gen + 1
WHERE seq = :seq

-- Terminate with rollback: the runner that claims it replays run(), unwinds the rollback handlers,
-- then ends it terminated; whoever held it is fenced out.
-- name: set_terminating
UPDATE wf_instances SET status = 'running', terminating = 1, owner = NULL, lease_until = NULL, wake_at = :now,
  paused_at = NULL, gen = gen + 1, started_at = COALESCE(started_at, :now), updated_at = :now
WHERE seq = :seq

-- name: step_position
SELECT pos FROM wf_steps WHERE instance = :seq AND kind = :kind AND name = :name AND n = :n

-- name: forget_steps_from
DELETE FROM wf_steps WHERE instance = :seq AND pos >= :pos

-- name: forget_attempts_from
DELETE FROM wf_attempts WHERE instance = :seq AND pos >= :pos

-- name: forget_events_from
DELETE FROM wf_events WHERE instance = :seq AND consumed_by >= :pos

-- name: set_restarted
UPDATE wf_instances SET status = 'queued', output = NULL, error = NULL, ended_at = NULL, started_at = NULL,
  paused_at = NULL, owner = NULL, lease_until = NULL, wake_at = :now, gen = gen + 1, updated_at = :now,
  terminating = 0
WHERE seq = :seq

-- name: delete_steps
DELETE FROM wf_steps WHERE instance = :seq

-- name: delete_attempts
DELETE FROM wf_attempts WHERE instance = :seq

-- name: delete_events
DELETE FROM wf_events WHERE instance = :seq

-- name: delete_history
DELETE FROM wf_history WHERE instance = :seq

-- name: delete_instance
DELETE FROM wf_instances WHERE seq = :seq

-- name: delete_waits
DELETE FROM wf_waits WHERE waiter = :seq

-- name: forget_waits_from
DELETE FROM wf_waits WHERE waiter = :seq AND pos >= :pos

-- retention ------------------------------------------------------------------------------------

-- Ended instances of a workflow kept past their retention (their own, else the workflow's
-- default): complete ones by `success_retention`, errored and terminated ones by `error_retention`.
-- name: expired_instances
SELECT {instance_columns} FROM wf_instances
WHERE workflow = :workflow AND ended_at IS NOT NULL AND (
  (status = 'complete' AND ended_at + COALESCE(success_retention, :success) <= :now)
  OR (status IN ('errored', 'terminated') AND ended_at + COALESCE(error_retention, :error) <= :now))
ORDER BY ended_at, seq LIMIT :limit {skip_locked}

-- cron schedules ------------------------------------------------------------------------------

-- name: add_cron_mark
INSERT INTO wf_crons (workflow, cron, last_tick, updated_at) VALUES (:workflow, :cron, :now, :now)
ON CONFLICT (workflow, cron) DO NOTHING

-- name: cron_marks
SELECT workflow, cron, last_tick FROM wf_crons

-- Moves the mark to `tick` only if it is older: of two runners firing one tick, the second
-- finds the first's mark (it waited on the row's lock) and gets no row back.
-- name: advance_cron
INSERT INTO wf_crons (workflow, cron, last_tick, updated_at) VALUES (:workflow, :cron, :tick, :now)
ON CONFLICT (workflow, cron) DO UPDATE SET last_tick = excluded.last_tick, updated_at = excluded.updated_at
WHERE wf_crons.last_tick < excluded.last_tick
RETURNING 1

-- runner writes (fenced by owner and gen) ---------------------------------------------------

-- The rows are chosen (and, on PostgreSQL, locked) once, in a materialized CTE: a LIMIT inside
-- `IN (subquery)` may be evaluated again by the planner and take more rows than asked for.
-- name: claim_due
WITH due AS MATERIALIZED (
  SELECT seq FROM wf_instances
  WHERE owner IS NULL AND wake_at IS NOT NULL AND wake_at <= :now AND {no_index}workflow {in:workflows} {extra}
  ORDER BY wake_at LIMIT :limit {skip_locked})
UPDATE wf_instances SET owner = :owner, lease_until = {db_now} + :lease,
  status = CASE WHEN status = 'queued' THEN 'running' ELSE status END,
  started_at = COALESCE(started_at, :now), updated_at = :now
WHERE owner IS NULL AND seq IN (SELECT seq FROM due)
RETURNING {instance_columns}

-- name: count_running
SELECT count(*) FROM wf_instances WHERE workflow = :workflow AND status IN ('running', 'waitingForPause')

-- name: commit_instance
UPDATE wf_instances SET status = CASE WHEN status = 'waitingForPause' THEN status ELSE :status END,
  wake_at = :wake_at, updated_at = :now
WHERE seq = :seq AND owner = :owner AND gen = :gen
RETURNING status

-- name: upsert_step
INSERT INTO wf_steps (instance, {step_columns})
VALUES (:seq, :pos, :kind, :name, :n, :status, :output, :error, :attempts, :config, :started_at, :ended_at,
        :wake_at, :event_type)
ON CONFLICT (instance, pos) DO UPDATE SET kind = excluded.kind, name = excluded.name, n = excluded.n,
  status = excluded.status, output = excluded.output, error = excluded.error, attempts = excluded.attempts,
  config = excluded.config, started_at = excluded.started_at, ended_at = excluded.ended_at,
  wake_at = excluded.wake_at, event_type = excluded.event_type

-- name: upsert_attempt
INSERT INTO wf_attempts (instance, pos, attempt, started_at, ended_at, error, traceback)
VALUES (:seq, :pos, :attempt, :started_at, :ended_at, :error, :traceback)
ON CONFLICT (instance, pos, attempt) DO UPDATE SET started_at = excluded.started_at,
  ended_at = excluded.ended_at, error = excluded.error, traceback = excluded.traceback

-- name: consume_event
UPDATE wf_events SET consumed_by = :pos WHERE seq = :event AND consumed_by IS NULL

-- PostgreSQL only (postgres.py's group commit): the same writes, refusing their whole transaction
-- when they change no row (a division by zero), so that a batch sends its COMMIT without reading
-- them first; a refused batch runs again op by op, with the reads (commit_instance...).
-- name: commit_instance_or_refuse
WITH changed AS ({commit_instance}) SELECT (SELECT status FROM changed), 1 / (SELECT count(*) FROM changed)

-- name: consume_event_or_refuse
WITH changed AS ({consume_event} RETURNING 1) SELECT 1 / (SELECT count(*) FROM changed)

-- name: finish_instance_or_refuse
WITH changed AS ({finish_instance} RETURNING 1) SELECT 1 / (SELECT count(*) FROM changed)

-- name: fenced
SELECT 1 FROM wf_instances WHERE seq = :seq AND owner = :owner AND gen = :gen {for_update}

-- A background "attempt started" mark may land after the attempt's own outcome: it only ever
-- moves a step forward (to a later attempt), never back to running.
-- name: mark_step_running
INSERT INTO wf_steps (instance, {step_columns})
VALUES (:seq, :pos, :kind, :name, :n, 'running', NULL, :error, :attempts, :config, :started_at, NULL, NULL, NULL)
ON CONFLICT (instance, pos) DO UPDATE SET status = 'running', attempts = excluded.attempts, wake_at = NULL
WHERE wf_steps.status IN ('running', 'retrying') AND wf_steps.attempts < excluded.attempts

-- name: insert_attempt_started
INSERT INTO wf_attempts (instance, pos, attempt, started_at, ended_at, error)
VALUES (:seq, :pos, :attempt, :now, NULL, NULL)
ON CONFLICT (instance, pos, attempt) DO NOTHING

-- name: finish_instance
UPDATE wf_instances SET status = :status, output = :output, error = :error, ended_at = :now, updated_at = :now,
  owner = NULL, lease_until = NULL, wake_at = NULL
WHERE seq = :seq AND owner = :owner AND gen = :gen

-- name: pause_at_boundary
UPDATE wf_instances SET status = 'paused', paused_at = :now, updated_at = :now, owner = NULL, lease_until = NULL,
  wake_at = NULL
WHERE seq = :seq AND owner = :owner AND gen = :gen AND status = 'waitingForPause'

-- A pause asked for while the runner held the instance takes effect on release: nothing is in flight.
-- name: release
UPDATE wf_instances SET owner = NULL, lease_until = NULL,
  wake_at = CASE WHEN status = 'waitingForPause' THEN NULL ELSE :wake_at END,
  paused_at = CASE WHEN status = 'waitingForPause' THEN :now ELSE paused_at END,
  status = CASE WHEN status = 'waitingForPause' THEN 'paused' ELSE status END
WHERE seq = :seq AND owner = :owner AND gen = :gen

-- name: pending_event_any
SELECT 1 FROM wf_events WHERE instance = :seq AND consumed_by IS NULL LIMIT 1

-- name: pending_event_of_types
SELECT 1 FROM wf_events WHERE instance = :seq AND consumed_by IS NULL AND type {in:types} LIMIT 1

-- liveness ---------------------------------------------------------------------------------

-- Rows locked right now (by the owner's own commit, on another connection) are skipped, not
-- waited for: renewals never wait or deadlock, and the next one renews them.
-- name: renew_leases
WITH mine AS MATERIALIZED (SELECT seq FROM wf_instances WHERE owner = :owner {skip_locked})
UPDATE wf_instances SET lease_until = {db_now} + :lease WHERE seq IN (SELECT seq FROM mine)
RETURNING seq

-- name: instances_of_owner
SELECT seq, owner, status FROM wf_instances WHERE owner = :owner ORDER BY seq {for_update}

-- A live runner whose renewal of a row was skipped (locked by its own commit) keeps it: its own
-- lease (its wf_runners row) has not run out. Rows locked by a writer are skipped too.
-- name: instances_with_expired_lease
SELECT seq, owner, status FROM wf_instances i
WHERE owner IS NOT NULL AND lease_until < {db_now} AND (CAST(:keep AS TEXT) IS NULL OR owner <> :keep)
  AND NOT EXISTS (SELECT 1 FROM wf_runners r WHERE r.owner = i.owner AND r.lease_until >= {db_now})
ORDER BY seq {skip_locked}

-- A dead runner's instance that was to pause (waitingForPause) pauses now: its runner is gone, so
-- nothing is in flight, and the step it was in runs again only once the instance is resumed.
-- name: hand_back
UPDATE wf_instances SET owner = NULL, lease_until = NULL,
  wake_at = CASE WHEN status = 'waitingForPause' THEN NULL
                 WHEN status = 'waiting' AND wake_at IS NOT NULL THEN wake_at ELSE :now END,
  paused_at = CASE WHEN status = 'waitingForPause' THEN :now ELSE paused_at END,
  status = CASE WHEN status = 'waitingForPause' THEN 'paused' ELSE status END
WHERE seq {in:seqs}

-- name: register_runner
INSERT INTO wf_runners (owner, host, pid, started_at, lease_until)
VALUES (:owner, :host, :pid, :now, {db_now} + :lease)
ON CONFLICT (owner) DO UPDATE SET lease_until = excluded.lease_until

-- name: forget_runner
DELETE FROM wf_runners WHERE owner = :owner

-- name: forget_runners_before
DELETE FROM wf_runners WHERE lease_until < {db_now} - 3600

-- name: live_runners
SELECT owner FROM wf_runners WHERE lease_until >= {db_now} ORDER BY owner

-- waits on other instances (step.wait_for_instance) ----------------------------------------

-- The instance waited on, its row locked: its end (which updates the row) and a new wait are
-- one after the other, so the end either sees the wait or the wait sees the end.
-- name: watch_by_id
SELECT seq, status, output, error FROM wf_instances WHERE workflow = :workflow AND id = :id {for_update}

-- name: watch_by_seq
SELECT seq, status, output, error FROM wf_instances WHERE seq = :seq {for_update}

-- name: add_wait
INSERT INTO wf_waits (waiter, pos, target) VALUES (:seq, :pos, :target) ON CONFLICT (waiter, pos) DO NOTHING

-- name: forget_wait
DELETE FROM wf_waits WHERE waiter = :seq AND pos = :pos

-- name: waiters_of
SELECT DISTINCT waiter FROM wf_waits WHERE target = :seq ORDER BY waiter

-- name: wake_waiting
UPDATE wf_instances SET wake_at = :now WHERE seq {in:seqs} AND status = 'waiting'

-- The same two for a runner's finish, which reads nothing before its batch has been sent
-- name: wake_waiters_of
UPDATE wf_instances SET wake_at = :now
WHERE seq IN (SELECT waiter FROM wf_waits WHERE target = :seq) AND status = 'waiting'

-- name: waiter_notes
SELECT DISTINCT 'e:' || waiter FROM wf_waits WHERE target = :seq

-- name: waited_instance_ended
SELECT 1 FROM wf_waits w LEFT JOIN wf_instances t ON t.seq = w.target
WHERE w.waiter = :seq AND (t.seq IS NULL OR t.status IN ('complete', 'errored', 'terminated')) LIMIT 1

-- code checks (the replay check before a runner executes new code) ------------------------

-- name: code_checked
SELECT workflow, fingerprint FROM wf_code WHERE workflow {in:workflows}

-- name: record_code
INSERT INTO wf_code (workflow, fingerprint, checked_at) VALUES (:workflow, :fingerprint, :now)
ON CONFLICT (workflow) DO UPDATE SET fingerprint = excluded.fingerprint, checked_at = excluded.checked_at
