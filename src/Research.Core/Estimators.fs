/// (being written)
module Research.Core.Estimators
