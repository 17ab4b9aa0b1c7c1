import { WorkflowEntrypoint } from "cloudflare:workers";

export class BenchWorkflow extends WorkflowEntrypoint {
  async run(event, step) {
    const n = event.payload.n;
    for (let i = 0; i < n; i++) await step.do(`step-${i}`, async () => i);
    return n;
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/health") return new Response("ok");
    if (url.pathname === "/bench") {
      // create, then wait for "complete" inside the worker (no polling): the reference's method A
      const n = Number(url.searchParams.get("n") || "10");
      const t0 = Date.now();
      const instance = await env.BENCH_WORKFLOW.create({ params: { n } });
      await env.BENCH_WORKFLOW.unsafeWaitForStatus(instance.id, "complete");
      return Response.json({ id: instance.id, ms: Date.now() - t0 });
    }
    return new Response("not found", { status: 404 });
  },
};
