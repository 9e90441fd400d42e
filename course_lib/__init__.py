"""course_lib: the small PyTorch library behind the course "Accuracy vs. Robustness".

One module (or package) per idea; imports flow one way (notebooks -> course_lib -> torch), and
``tests/test_imports.py`` fails on any import cycle inside course_lib:

- :mod:`course_lib.checks`     -- input checks: TypeError for a wrong type, ValueError for a wrong value.
- :mod:`course_lib.profiles`   -- quick / mnist / fashion / cifar10: every size that scales, grouped by idea.
- :mod:`course_lib.data`       -- data sets as [0, 1] float tensors (the only module that downloads).
- :mod:`course_lib.device`     -- the one place that picks a device; seeding, eval mode, mixed precision (CUDA only).
- :mod:`course_lib.distributed` -- torchrun process groups (DDP training, sharded certification); no-ops in one process.
- :mod:`course_lib.models`     -- small CNNs, MLP, ResNet, PreAct ResNet-18 (one file each), normalization inside.
- :mod:`course_lib.attacks`    -- FGSM and PGD (l_inf, l_2), one attack per file.
- :mod:`course_lib.evaluation` -- accuracy, robust accuracy, the worst case over attacks; evaluation kinds.
- :mod:`course_lib.training`   -- one training loop (``loop``, data-parallel under torchrun), registered losses
  (``losses``; SmoothMix in ``smoothmix``), crop + flip (``augment``), the best epoch (``best``).
- :mod:`course_lib.recipes`    -- named training recipes (data only).
- :mod:`course_lib.zoo`        -- the model cache: ``zoo.load(name)`` trains a recipe on a miss; named model pairs;
  ``zoo.evaluate(name, kind, ...)`` caches a costly evaluation (e.g. CERTIFY at n = 10,000) beside the model.
- :mod:`course_lib.smoothing`  -- randomized smoothing: statistics, PREDICT/CERTIFY, metrics, the soft classifier.
- :mod:`course_lib.toy`        -- 2-D toy data sets and classifiers, where geometry teaches better than images.
- :mod:`course_lib.plots`      -- figures several chapters draw (trade-off plot, certified curves, image grids).
- :mod:`course_lib.sliders`    -- sliders that work in a live kernel and in the static HTML book.
"""

__version__ = "0.2.0"
