"""A/B experiments: the models, the lifecycle and analysis services, their statistics
(`stats`), API, admin and review screen."""
