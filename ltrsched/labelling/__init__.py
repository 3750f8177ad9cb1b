"""``ltrsched label``: serve a model on the engine and record the output lengths it generates for the
ShareGPT prompts (the labels a ranker of that model's traffic learns from; :mod:`ltrsched.workloads.labels`).

* :mod:`ltrsched.labelling.jobs`: which prompts, in which runs (main labels, the sampled subset);
* :mod:`ltrsched.labelling.settings`: what the labels depend on (model, sampling), checked on resume;
* :mod:`ltrsched.labelling.parts`: chunks written as part files, resumable, concatenated at the end;
* :mod:`ltrsched.labelling.generate`: the engine loop (vLLM with the adapter's FCFS scheduler);
* :mod:`ltrsched.labelling.run`: one labelling run: prompts -> engine -> parts -> the labels file;
* :mod:`ltrsched.labelling.commands`: the command line.
"""
