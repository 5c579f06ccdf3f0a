/// (being written)
module Research.Core.Gaussian
