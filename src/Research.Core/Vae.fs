/// (being written)
module Research.Core.Vae
