"""Learners: a model plus its preprocessing, trained by the shared loop, saved in a bundle, loaded and served.

One module per kind of learner; architectures live in `models/`, the Task that chooses a learner in `tasks/`.
"""
