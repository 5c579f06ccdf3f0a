/// (being written)
module Research.Core.Mlp
