using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using TorchSharp;
using Core = Research.Core;

namespace Research;

/// <summary>Conversions between the facade's .NET types and the F# core's; no mathematics here.</summary>
internal static class Convert
{
    /// <summary>A CPU float32 tensor holding a copy of <paramref name="data"/>.</summary>
    public static torch.Tensor ToTensor(float[,] data, string name)
    {
        ArgumentNullException.ThrowIfNull(data, name);
        return Core.Interop.ofArray2D(data, torch.CPU);
    }

    /// <summary>A CPU float32 tensor holding a copy of jagged <paramref name="rows"/> (one array per example, all of
    /// one length); Research.Core.Interop.ofJagged checks them.</summary>
    public static torch.Tensor ToTensor(float[][] rows) => Core.Interop.ofArray2D(Core.Interop.ofJagged(rows), torch.CPU);

    /// <summary>A CPU float32 tensor [rows, values.Length / rows] holding a copy of row-major <paramref name="values"/>.</summary>
    public static torch.Tensor ToTensor(ReadOnlySpan<float> values, int rows) => Core.Interop.ofSpan(values, rows, torch.CPU);

    public static float[,] ToArray(torch.Tensor t)
    {
        using (t) return Core.Interop.toArray2D(t);
    }

    public static FSharpList<int> ToList(int[] values, string name)
    {
        ArgumentNullException.ThrowIfNull(values, name);
        return ListModule.OfArray(values);
    }

    public static Core.Mlp.Activation ToCore(Activation a) => a switch
    {
        Activation.ReLU => Core.Mlp.Activation.ReLU,
        Activation.Tanh => Core.Mlp.Activation.Tanh,
        _ => throw new ArgumentException($"Unknown activation {a}.", "Activation"),
    };

    public static Activation FromCore(Core.Mlp.Activation a) => a.IsTanh ? Activation.Tanh : Activation.ReLU;

    /// <summary>null: PyTorch's default initialisation; else N(0, std²) (the core checks std).</summary>
    public static Core.Mlp.Init ToInit(double? std) => std is { } s ? Core.Mlp.Init.NewNormal(s) : Core.Mlp.Init.Uniform;

    public static double? FromInit(Core.Mlp.Init init) => init is Core.Mlp.Init.Normal n ? n.std : null;

    public static FSharpOption<Core.ConvNet.ImageShape> ToCore(ImageShape? shape) =>
        shape is null ? FSharpOption<Core.ConvNet.ImageShape>.None
                      : FSharpOption<Core.ConvNet.ImageShape>.Some(new(shape.Channels, shape.Height, shape.Width));

    public static ImageShape? FromCore(FSharpOption<Core.ConvNet.ImageShape> shape) =>
        FSharpOption<Core.ConvNet.ImageShape>.get_IsSome(shape) ? new(shape.Value.Channels, shape.Value.Height, shape.Value.Width) : null;

    public static EpochReport ToReport(Core.Training.EpochReport r) =>
        new(r.Epoch, r.TrainLoss, FSharpOption<double>.get_IsSome(r.ValidationLoss) ? r.ValidationLoss.Value : null,
            r.ExamplesSeen, r.Elapsed);

    /// <summary>Runs <paramref name="fit"/> with the core's form of <paramref name="options"/>, owning the validation tensor.</summary>
    public static TrainingHistory Fit(TrainingOptions? options, Func<Core.Training.TrainingConfig, FSharpList<Core.Training.EpochReport>> fit)
    {
        options ??= new TrainingOptions();
        using var validation = options.Validation is null ? null : ToTensor(options.Validation, "Validation");
        var progress = options.Progress;
        var config = new Core.Training.TrainingConfig(
            options.Epochs, options.BatchSize, options.LearningRate,
            options.Optimizer == Optimizer.Adam ? Core.Training.Optimizer.Adam : Core.Training.Optimizer.Adagrad,
            options.Seed, options.WeightDecay,
            validation is null ? FSharpOption<torch.Tensor>.None : FSharpOption<torch.Tensor>.Some(validation),
            FuncConvert.FromAction<Core.Training.EpochReport>(r => progress?.Report(ToReport(r))),
            options.Cancellation,
            options.DynamicBinarization,
            options.EarlyStoppingPatience is { } patience ? FSharpOption<int>.Some(patience) : FSharpOption<int>.None,
            options.CheckpointPath is null ? FSharpOption<string>.None : FSharpOption<string>.Some(options.CheckpointPath),
            options.CheckpointEveryBatches is { } every ? FSharpOption<int>.Some(every) : FSharpOption<int>.None,
            options.TensorBoardLogDirectory is null ? FSharpOption<string>.None : FSharpOption<string>.Some(options.TensorBoardLogDirectory));
        var reports = fit(config);
        return new TrainingHistory(reports.Select(ToReport).ToArray());
    }
}
