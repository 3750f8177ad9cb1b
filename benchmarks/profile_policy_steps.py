"""Where does a policy's engine step spend its time? cProfile one burst per policy on the real CPU engine
(llama-tiny, 32 sequences per step; FCFS and MLFQ twice, alternating) and list the functions whose
cumulative time differs most between the last FCFS and the last MLFQ run (VALIDATION.md section 1)."""
import cProfile, pstats, io, sys
from ltrsched.validation.engines import start_engine
from ltrsched.policies import make_policy
from ltrsched.workloads import load_workload
eng = start_engine(model="llama-tiny", max_num_seqs=32)
wl = load_workload("sharegpt", num_requests=100, seed=0)
stats = {}
for spec in ["fcfs", "mlfq", "fcfs", "mlfq"]:
    pr = cProfile.Profile(); pr.enable(); r = eng.run(wl, make_policy(spec)); pr.disable()
    st = pstats.Stats(pr); stats[spec] = {f"{k[0].split('site-packages/')[-1]}:{k[1]}:{k[2]}": (v[1], v[3]) for k, v in st.stats.items()}
    print(spec, "steps", r.summary.get("steps"), "makespan", r.summary["makespan"], flush=True)
f, m = stats["fcfs"], stats["mlfq"]
rows = sorted(((m.get(k, (0, 0))[1] - f.get(k, (0, 0))[1], k, f.get(k, (0, 0)), m.get(k, (0, 0))) for k in set(f) | set(m)), reverse=True)
for d, k, a, b in rows[:45]:
    print(f"{d:+8.3f}s cum  fcfs {a[1]:8.3f}s/{a[0]:>7} calls  mlfq {b[1]:8.3f}s/{b[0]:>7} calls  {k}")
