/**
 * Stopping with the parent: a process started by another one (the launcher's
 * child, or the launcher under `deno task`) must not outlive it. A supervisor,
 * a cron timeout or the OOM killer may SIGKILL the process it started, which
 * gets no chance to stop its children; they notice that they were re-parented
 * and stop themselves, rolling back.
 *
 * @module
 */

/** How often the parent is checked. */
export const PARENT_CHECK_MS = 200;

/**
 * Calls `onGone` once when this process's parent exits (the process is
 * re-parented, so `Deno.ppid` is no longer `parent`): at once when it is
 * already gone, else at the next check. The check does not keep the process
 * alive. Returns a function that stops watching.
 */
export function watchParent(onGone: () => void, parent = Deno.ppid, intervalMs = PARENT_CHECK_MS): () => void {
  if (Deno.ppid !== parent) {
    queueMicrotask(onGone);
    return () => {};
  }
  const timer = setInterval(() => {
    if (Deno.ppid === parent) return;
    clearInterval(timer);
    onGone();
  }, intervalMs);
  Deno.unrefTimer(timer);
  return () => clearInterval(timer);
}
