"""A post-balanced training step, runnable as is on a CPU: 4 gloo processes as 2 "nodes" of 2,
so the exchanges run node-wise. plan_ahead plans step t+1 while step t trains; dispatch and route
move each phase's data to its balanced layout (differentiable all-to-alls); micro_batches gives
the same number of micro-batches on every rank (the vision encoder in chunks of at most 256
patches, the LLM in 2 accumulation micro-steps); refit fits the costs to the measured times.

    pip install ./integrations/pytorch     # or PYTHONPATH=integrations/pytorch
    python3 integrations/pytorch/examples/training_step.py

README.md quotes the loop; tests/test_readme.py runs this file and checks the quote against it.
"""
import os, torch, torch.distributed as dist, torch.multiprocessing as mp
from postbalance_torch import CostSamples, Planner, plan_ahead, refit

WORLD, DIM = 4, 8   # 4 gloo processes on this CPU, as 2 "nodes" of 2 (node-wise exchanges)
config = {
    "ranks": WORLD, "ranksPerNode": 2,
    "phases": [
        {"name": "vision", "modalities": ["image"], "unit": "segment", "cost": {"perItem": 40, "perToken": 1},
         "microBatches": {"maxTokens": 256}},             # encoder micro-batches of <= 256 patches
        {"name": "llm", "modalities": ["text", "image"], "unit": "example", "scale": {"image": 0.25},
         "cost": {"perToken": 1}, "microBatches": {"count": 2}},   # 2 accumulation micro-steps
    ],
}

def loader(rank, steps=6):  # this rank's batches: (lengths of each example, its tensors)
    g = torch.Generator().manual_seed(rank)
    for s in range(steps):
        batch = []
        for k in range(2 + 3 * (rank == 0)):              # rank 0 samples more: post-balancing spreads it
            n_img, text = int(torch.randint(0, 3, (1,), generator=g)), int(torch.randint(4, 64, (1,), generator=g))
            sizes = [int(torch.randint(16, 200, (1,), generator=g)) for _ in range(n_img)]
            batch.append(({"id": f"r{rank}s{s}e{k}", "text": text, "image": sizes},
                          [torch.randn(L, DIM, generator=g) for L in sizes], torch.randn(text, DIM, generator=g)))
        yield batch

def train(rank):
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1"); os.environ.setdefault("MASTER_PORT", "29533")
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.manual_seed(0)
    vision, llm = torch.nn.Linear(DIM, DIM), torch.nn.Linear(DIM, 1)
    opt = torch.optim.SGD([*vision.parameters(), *llm.parameters()], lr=0.01)
    samples = CostSamples()                               # measured phase times, for refitting costs
    with Planner(config, backend="cpu") as planner:
        ahead = plan_ahead(loader(rank), config, planner, examples=lambda b: [meta for meta, _, _ in b])
        for t, (batch, step) in enumerate(ahead):         # step t+1 is planned while step t trains
            # Image patches -> the vision phase's balanced layout (node-wise: 2 "nodes" of 2).
            to_vision = step.dispatch("vision")
            patches = torch.cat([p for _, imgs, _ in batch for p in imgs] or [torch.zeros(0, DIM)])
            images = to_vision.split(to_vision(patches))  # one tensor per planned image
            pooled = [torch.zeros(DIM)] * len(images)
            with samples.time(t, "vision", step.local_tokens("vision")):
                for mb in step.micro_batches("vision"):   # same count on every rank; [] is allowed
                    if mb:
                        out = vision(torch.cat([images[i] for i in mb])).split([images[i].shape[0] for i in mb])
                        for i, o in zip(mb, out):
                            pooled[i] = o.mean(0)
            encoded = torch.stack(pooled) if pooled else torch.zeros(0, DIM)
            # One pooled vector per image -> the rank holding its example in the LLM phase.
            route = step.route("vision", to="llm", rows=lambda length, modality: 1)
            routed = route(encoded, backward=True)
            leaf = routed.detach().requires_grad_()       # accumulate over the LLM's micro-batches
            per_example = route.split_by_item(leaf)       # planned LLM order
            to_llm = step.dispatch("llm", rows=lambda e: e["text"])
            texts = to_llm.split(to_llm(torch.cat([txt for _, _, txt in batch])))
            tokens = sum(e["text"] for e in step.examples)
            loss = 0.0
            for mb in step.micro_batches("llm"):
                if mb:
                    part = sum(llm(torch.cat([per_example[i], texts[i]])).square().sum() for i in mb) / tokens
                    part.backward()
                    loss += float(part)
            routed.backward(leaf.grad if leaf.grad is not None else torch.zeros_like(leaf))  # every rank
            for p in [*vision.parameters(), *llm.parameters()]:
                dist.all_reduce(p.grad)                   # what DDP does
            opt.step(); opt.zero_grad()
            total = torch.tensor(loss); dist.all_reduce(total)
            if rank == 0:
                print(f"step {t}: loss {float(total):.4f}, planning waited {step.timings['critical']:.1f} ms")
            if t == 3:                                    # every N steps, on every rank
                fitted = refit(samples, planner, ahead=ahead)
                if rank == 0:
                    print("refitted vision cost:", fitted["phases"][0]["cost"])
    dist.destroy_process_group()

if __name__ == "__main__":
    mp.spawn(train, nprocs=WORLD)
