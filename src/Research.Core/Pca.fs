/// (being written)
module Research.Core.Pca
