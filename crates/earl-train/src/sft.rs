//! Supervised fine-tuning: the loop, top to bottom.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use earl_model::{Emu3Tokenizer, Sample};

use crate::TrainError;
use crate::adamw::{AdamW, AdamWConfig};
use crate::checkpoint::{RunDir, TrainerState, load_state};
use crate::config::TrainConfig;
use crate::loader::{self, Loader, LoaderConfig, Position, Source};
use crate::metrics::{Memory, Metrics, StepMetrics};
use crate::model::{TrainModel, resolve_device};
use crate::schedule::CosineSchedule;
use crate::step::{evaluate, forward_backward};

/// One `earl-train` invocation.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Token dataset directories (tokens.v1).
    pub shards: Vec<PathBuf>,
    pub config: TrainConfig,
    /// The run directory: checkpoints, metrics; rerunning with it resumes.
    pub out: PathBuf,
    /// Stop (with a checkpoint) after this many optimizer steps in total.
    pub max_steps: Option<u64>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub resumed_from: Option<u64>,
    pub step: u64,
    pub total_steps: u64,
    pub last_loss: Option<f64>,
    pub checkpoint: Option<PathBuf>,
    pub stopped_by_signal: bool,
    pub loader: loader::StatsSnapshot,
}

/// Trains until the schedule ends, the data ends, `max_steps`, or `stop` is raised (by a
/// signal); always leaves a checkpoint of the last step.
///
/// Randomness (initialisation, dropout) goes through libtorch's process-global generator,
/// reseeded from (seed, step, micro-batch, layer): run one training per process at a time.
pub fn train(opts: &TrainOptions, stop: &AtomicBool) -> Result<RunSummary, TrainError> {
    let cfg = &opts.config;
    let run = RunDir::create(&opts.out)?;
    let device = resolve_device(&cfg.model.device)?;
    let tokenizer = Arc::new(Emu3Tokenizer::load(cfg.model.tokenizer.as_deref())?);

    // Data: the datasets, their mixture and this rank's share.
    let sources = opts
        .shards
        .iter()
        .map(|d| Source::open(d))
        .collect::<Result<Vec<_>, _>>()?;
    let loader_config = loader_config(cfg, &sources)?;
    let total_steps = planned_steps(cfg, &sources, &loader_config);

    // Model and optimizer, then the newest checkpoint if there is one.
    let mut model = TrainModel::init(&cfg.model, device, cfg.seed)?;
    let mut optim = AdamW::new(adamw_config(cfg), model.named_parameters());
    let mut state = TrainerState {
        step: 0,
        loader: Position::default(),
        seed: cfg.seed,
        total_steps,
        loader_stats: Default::default(),
        config: serde_json::to_value(cfg).unwrap_or_default(),
    };
    let resumed_from = match run.latest()? {
        Some(dir) => {
            let (saved, moments) = load_state(&dir)?;
            model.load(&dir)?;
            optim.load_state(saved.step, moments)?;
            tracing::info!(checkpoint = %dir.display(), step = saved.step, "resuming");
            state = TrainerState {
                config: state.config,
                ..saved
            };
            Some(state.step)
        }
        None => None,
    };
    let schedule = CosineSchedule {
        peak_lr: cfg.optim.lr,
        min_lr: cfg.optim.min_lr,
        warmup_steps: cfg.schedule.warmup_steps,
        total_steps: state.total_steps,
    };
    let stop_at = opts.max_steps.unwrap_or(u64::MAX).min(state.total_steps);

    let mut loader = Loader::start(
        sources.clone(),
        loader_config.clone(),
        tokenizer.clone(),
        state.loader,
    );
    let validation = if cfg.eval.every > 0 {
        let stats = loader::Stats::default();
        loader::validation_samples(&sources, cfg.eval.rows, &tokenizer, &loader_config, &stats)
    } else {
        Vec::new()
    };
    let mut metrics = Metrics::open(&run.root, state.total_steps, state.step)?;
    tracing::info!(
        parameters = model.parameter_count(),
        ?device,
        total_steps = state.total_steps,
        validation_rows = validation.len(),
        "training"
    );

    let mut last_loss = None;
    let mut last_saved = resumed_from;
    while state.step < stop_at && !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let micro_batches = next_micro_batches(&mut loader, cfg);
        if micro_batches.is_empty() {
            tracing::info!(step = state.step, "the data is exhausted");
            break;
        }

        let lr = schedule.lr(state.step);
        let seeds = (cfg.seed, state.step);
        let checkpointing = cfg.model.activation_checkpointing;
        let loss = forward_backward(&model.lm, &micro_batches, device, checkpointing, seeds)?;
        let grad_norm = optim.grad_norm();
        optim.step(lr, clip_factor(grad_norm, cfg.optim.max_grad_norm));
        state.step += 1;
        state.loader = loader.position();

        let val_loss = if cfg.eval.every > 0 && state.step.is_multiple_of(cfg.eval.every) {
            evaluate(&model.lm, &validation, cfg.data.micro_batch_size, device)?
        } else {
            None
        };
        metrics.log(&StepMetrics {
            step: state.step,
            loss: loss.loss,
            lr,
            grad_norm,
            tokens_per_s: loss.tokens as f64 / started.elapsed().as_secs_f64(),
            target_tokens: loss.target_tokens,
            tokens: loss.tokens,
            memory: Memory::now(),
            val_loss,
        })?;
        last_loss = Some(loss.loss);

        if cfg.checkpoint.every > 0 && state.step.is_multiple_of(cfg.checkpoint.every) {
            save(&run, &model, &optim, &mut state, &loader, cfg)?;
            last_saved = Some(state.step);
        }
    }

    let checkpoint = if last_saved != Some(state.step) {
        Some(save(&run, &model, &optim, &mut state, &loader, cfg)?)
    } else {
        run.latest()?
    };
    metrics.finish();
    Ok(RunSummary {
        resumed_from,
        step: state.step,
        total_steps: state.total_steps,
        last_loss,
        checkpoint,
        stopped_by_signal: stop.load(Ordering::Relaxed),
        loader: loader.stats(),
    })
}

fn save(
    run: &RunDir,
    model: &TrainModel,
    optim: &AdamW,
    state: &mut TrainerState,
    loader: &Loader,
    cfg: &TrainConfig,
) -> Result<PathBuf, TrainError> {
    state.loader_stats = loader.stats();
    let c = &cfg.checkpoint;
    let dir = run.save(model, optim, state, c.keep_last, c.keep_every)?;
    tracing::info!(checkpoint = %dir.display(), "saved");
    Ok(dir)
}

/// `grad_accum` micro-batches (fewer at the end of the data).
fn next_micro_batches(loader: &mut Loader, cfg: &TrainConfig) -> Vec<Vec<Sample>> {
    (0..cfg.optim.grad_accum)
        .map(|_| loader.next_batch(cfg.data.micro_batch_size))
        .take_while(|b| !b.is_empty())
        .collect()
}

/// The factor that scales gradients down to `max_norm` (1 when within it or disabled).
pub fn clip_factor(grad_norm: f64, max_norm: f64) -> f64 {
    if max_norm <= 0.0 || !grad_norm.is_finite() {
        return 1.0;
    }
    (max_norm / (grad_norm + 1e-6)).min(1.0)
}

fn adamw_config(cfg: &TrainConfig) -> AdamWConfig {
    AdamWConfig {
        beta1: cfg.optim.beta1,
        beta2: cfg.optim.beta2,
        eps: cfg.optim.eps,
        weight_decay: cfg.optim.weight_decay,
    }
}

fn loader_config(cfg: &TrainConfig, sources: &[Source]) -> Result<LoaderConfig, TrainError> {
    let (rank, world_size) = LoaderConfig::rank_from_env()?;
    let d = &cfg.data;
    Ok(LoaderConfig {
        coefficients: loader::coefficients(sources, &d.coefficients)?,
        context_length: d.context_length,
        image_area: d.image_area,
        shuffle_buffer: d.shuffle_buffer,
        prefetch: d.prefetch,
        holdout_fraction: d.holdout_fraction,
        use_cot: d.use_cot,
        seed: cfg.seed,
        epochs: (cfg.schedule.total_steps == 0).then_some(cfg.schedule.epochs),
        rank,
        world_size,
    })
}

/// `schedule.total_steps`, or the optimizer steps `epochs` passes over this rank's share of the
/// mixture take (before rows are skipped for length, which the loader only learns while reading).
fn planned_steps(cfg: &TrainConfig, sources: &[Source], lc: &LoaderConfig) -> u64 {
    if cfg.schedule.total_steps > 0 {
        return cfg.schedule.total_steps;
    }
    let per_epoch: u64 = sources
        .iter()
        .zip(&lc.coefficients)
        .map(|(s, &c)| loader::epoch_quota(s.train_rows(), c))
        .sum();
    let per_rank = per_epoch * cfg.schedule.epochs / lc.world_size;
    let per_step = (cfg.data.micro_batch_size * cfg.optim.grad_accum) as u64;
    per_rank.div_ceil(per_step).max(1)
}
