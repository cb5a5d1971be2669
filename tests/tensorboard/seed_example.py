# The seed's "Complete Example" (shared/seeds/001, tracelet's Aim page), with only its tracelet
# lines replaced by track's: `import track_tensorboard as tracelet`. Run by test_torch_e2e.
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.tensorboard import SummaryWriter

import track_tensorboard as tracelet

# Start AIM tracking
tracelet.start_logging(exp_name="aim_pytorch_example", project="tutorials", backend="aim")

# Model setup
model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
optimizer = optim.Adam(model.parameters(), lr=0.001)
criterion = nn.CrossEntropyLoss()

# Data
X = torch.randn(1000, 784)
y = torch.randint(0, 10, (1000,))
dataset = TensorDataset(X, y)
dataloader = DataLoader(dataset, batch_size=32)

# Training with automatic AIM logging
writer = SummaryWriter()

for epoch in range(10):
    total_loss = 0
    for batch_idx, (data, target) in enumerate(dataloader):
        optimizer.zero_grad()
        output = model(data)
        loss = criterion(output, target)
        loss.backward()
        optimizer.step()

        # Metrics automatically sent to AIM
        writer.add_scalar("batch/loss", loss.item(), epoch * len(dataloader) + batch_idx)
        total_loss += loss.item()

    # Epoch metrics
    avg_loss = total_loss / len(dataloader)
    writer.add_scalar("epoch/loss", avg_loss, epoch)

    # Model weights histogram
    for name, param in model.named_parameters():
        writer.add_histogram(f"weights/{name}", param, epoch)

# Log final parameters
exp = tracelet.get_active_experiment()
exp.log_params(
    {
        "model.type": "simple_mlp",
        "model.input_size": 784,
        "model.hidden_size": 128,
        "model.output_size": 10,
        "optimizer.type": "adam",
        "optimizer.learning_rate": 0.001,
        "training.batch_size": 32,
        "training.epochs": 10,
    }
)

# Cleanup
writer.close()
tracelet.stop_logging()

print("✅ Training completed! View results with: aim up")
