"""course_lib: the small PyTorch library behind the course "Accuracy vs. Robustness".

One module per idea:

- :mod:`course_lib.device`     -- the one place that picks a device; seeding.
- :mod:`course_lib.profiles`   -- quick / mnist / fashion / cifar10 and every size that scales with them.
- :mod:`course_lib.data`       -- data sets as [0, 1] float tensors (the only module that downloads).
- :mod:`course_lib.models`     -- small CNN / MLP / ResNet, normalization inside the model.
- :mod:`course_lib.attacks`    -- FGSM and PGD (l_inf, l_2), one attack per file.
- :mod:`course_lib.evaluation` -- clean / robust accuracy, accuracy-versus-eps curves.
- :mod:`course_lib.training`   -- one training loop with pluggable losses (standard, FGSM-AT, PGD-AT, TRADES, noise).
- :mod:`course_lib.recipes`    -- named training recipes (and the named model pairs of the mixing chapters).
- :mod:`course_lib.zoo`        -- the model cache: ``zoo.load(name)`` trains a recipe on a miss.
- :mod:`course_lib.smoothing`  -- randomized smoothing: Cohen et al.'s PREDICT and CERTIFY (2019).
- :mod:`course_lib.toy`        -- 2-D toy data sets and classifiers, where geometry teaches better than images.
- :mod:`course_lib.sliders`    -- sliders that work in a live kernel and in the static HTML book.
"""

__version__ = "0.1.0"
