/// (being written)
module Research.Core.Autoencoder
