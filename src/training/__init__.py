"""The LightningModule, the regularizers, the data modules and the builders that turn a config into them."""
