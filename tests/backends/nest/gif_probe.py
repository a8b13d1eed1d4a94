"""Run by test_current_alif.py in its own process (NEST stays out of pytest's): one deterministic gif_psc_exp
driven by a large current, with t_ref = 0 and t_ref = 1 step; prints its V_m, I_syn_ex and spike times as JSON."""

import json
import sys


def main():
    import nest

    nest.set_verbosity("M_ERROR")
    out = {}
    for t_ref in (0.0, 1.0):
        nest.ResetKernel()
        nest.resolution = 1.0
        n = nest.Create("gif_psc_exp", params={
            "E_L": 0.0, "V_m": 0.0, "C_m": 10.0, "g_L": 1.0, "tau_syn_ex": 5.0, "tau_syn_in": 5.0, "V_T_star": 1.0,
            "V_reset": 0.0, "t_ref": t_ref, "I_e": 0.0, "Delta_V": 1e-300, "lambda_0": 1e-290, "q_sfa": [],
            "tau_sfa": [], "q_stc": [], "tau_stc": []})
        sg = nest.Create("spike_generator", params={"spike_times": [1.0]})
        nest.Connect(sg, n, syn_spec={"weight": 100.0, "delay": 1.0})
        mm = nest.Create("multimeter", params={"record_from": ["V_m", "I_syn_ex"], "interval": 1.0})
        sr = nest.Create("spike_recorder")
        nest.Connect(mm, n)
        nest.Connect(n, sr)
        nest.Simulate(12.0)
        ev = mm.events
        out[str(t_ref)] = {"t": [float(t) for t in ev["times"]], "V": [float(v) for v in ev["V_m"]],
                           "I": [float(i) for i in ev["I_syn_ex"]], "spikes": [float(t) for t in sr.events["times"]]}
    sys.stdout.write("\n" + json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
